# The fetch steps of SSM secrets, and the rule they keep.

run "nothing_to_fetch_without_files" {
  command = plan
  assert {
    condition     = length(output.runcmd) == 0
    error_message = "no files, no runcmd entries"
  }
}

run "each_file_is_fetched_root_only_and_replaced_whole" {
  command = plan
  variables {
    aws_region = "eu-west-1"
    files = {
      "/etc/meridian/edge.toml"    = "/meridian/edge/config"
      "/etc/meridian/tls/edge.key" = "/meridian/tls-key"
    }
  }
  assert {
    condition     = length(output.runcmd) == 2
    error_message = "one entry per file"
  }
  assert {
    condition     = alltrue([for c in output.runcmd : strcontains(c, "umask 077") && strcontains(c, "> \"$0.new\" && mv \"$0.new\" \"$0\"") && strcontains(c, "--with-decryption")])
    error_message = "written root-only, moved into place only when whole, decrypted"
  }
  assert {
    condition     = strcontains(output.runcmd[0], "\"/etc/meridian/edge.toml\", \"eu-west-1\", \"/meridian/edge/config\"]")
    error_message = "the path, the region and the parameter, in path order"
  }
}

run "rejects_a_relative_path" {
  command = plan
  variables {
    files = { "meridian/edge.toml" = "/meridian/edge/config" }
  }
  expect_failures = [var.files]
}
