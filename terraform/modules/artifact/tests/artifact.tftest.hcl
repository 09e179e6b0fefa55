# The install step of a release artifact, and the rules it keeps.

variables {
  path = "/usr/local/bin/edge"
}

run "nothing_to_install_without_a_url" {
  command = plan
  assert {
    condition     = output.runcmd == null
    error_message = "no URL, no runcmd entry"
  }
}

run "downloads_checks_then_moves_into_place" {
  command = plan
  variables {
    url    = "https://releases.example/meridian/edge-aarch64"
    sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  assert {
    condition     = strcontains(output.runcmd, "sha256sum -c - && chmod 0755") && strcontains(output.runcmd, "\"/usr/local/bin/edge\", \"https://releases.example/meridian/edge-aarch64\", \"0123456789abcdef")
    error_message = "the file is checked before it is moved into place"
  }
}

run "rejects_a_url_without_its_checksum" {
  command = plan
  variables {
    url = "https://releases.example/meridian/edge"
  }
  expect_failures = [var.sha256]
}

run "rejects_a_plain_http_url" {
  command = plan
  variables {
    url    = "http://releases.example/meridian/edge"
    sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  expect_failures = [var.url]
}

run "rejects_a_checksum_that_is_not_sha256" {
  command = plan
  variables {
    url    = "https://releases.example/meridian/edge"
    sha256 = "abc"
  }
  expect_failures = [var.sha256]
}
