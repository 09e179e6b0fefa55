# Plans modules/edge with typical inputs and checks what it renders; envs/local's test runs the
# rendered config for real.

variables {
  name        = "eu-west-1"
  region      = "eu-west"
  capacity    = { egress_mbps = 800, connections = 4000 }
  address     = "198.51.100.7"
  origin_urls = ["https://origin-a.example", "https://origin-b.example"]
  router_urls = ["http://router.example:8053"]
}

run "renders_config_unit_cloud_init_and_topology_entry" {
  command = plan

  assert {
    condition     = strcontains(nonsensitive(output.config), "listen = [\"198.51.100.7:8080\"]")
    error_message = "the edge listens on its address and the HTTP port"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "origins = [\"https://origin-a.example\", \"https://origin-b.example\"]")
    error_message = "origins in order"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "drain_to = \"http://router.example:8053/r\"")
    error_message = "a draining edge sends new requests through the first router's redirect by default"
  }
  assert {
    condition     = !strcontains(nonsensitive(output.config), "admin_token")
    error_message = "no admin token unless one is given"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "steering_hls = \"http://router.example:8053/steer/hls\"\nsteering_dash = \"http://router.example:8053/steer/dash\"\n")
    error_message = "the edge writes the first router's content steering into the manifests it serves"
  }
  assert {
    condition     = !strcontains(nonsensitive(output.config), "origin_ca_file") && !strcontains(nonsensitive(output.config), "origin_host")
    error_message = "no private CA and no Host override unless given"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "LoadCredential=edge.toml:/etc/meridian/edge.toml") && strcontains(output.systemd_unit, "ExecStart=/usr/local/bin/edge --config $${CREDENTIALS_DIRECTORY}/edge.toml")
    error_message = "the unit hands the dynamic user the root-only config and runs the edge with it"
  }
  assert {
    condition     = yamldecode(nonsensitive(output.cloud_init)).write_files[0].content == nonsensitive(output.config)
    error_message = "cloud-init is valid YAML and writes the config exactly"
  }
  assert {
    condition     = yamldecode(nonsensitive(output.cloud_init)).write_files[1].content == output.systemd_unit
    error_message = "cloud-init writes the unit exactly"
  }
  assert {
    condition     = yamldecode(nonsensitive(output.cloud_init)).runcmd[length(yamldecode(nonsensitive(output.cloud_init)).runcmd) - 1] == ["sh", "-ec", "test -s \"$0\" && test -x \"$1\" && systemctl enable --now meridian-edge.service", "/etc/meridian/edge.toml", "/usr/local/bin/edge"]
    error_message = "cloud-init starts the edge last, once its config and binary are in place"
  }
  assert {
    condition = jsonencode(output.topology_entry) == jsonencode({
      name     = "eu-west-1"
      region   = "eu-west"
      http     = "http://198.51.100.7:8080"
      admin    = "http://198.51.100.7:9090"
      dns      = ["198.51.100.7"]
      capacity = { egress_mbps = 800, connections = 4000 }
    })
    error_message = "the topology entry names the node, its URLs, its DNS address and capacity"
  }
}

run "cloud_instance_listens_everywhere_and_keeps_its_token" {
  command = plan

  variables {
    listen_address = "0.0.0.0"
    admin_token    = "s3cret"
    drain_to       = "http://eu-west-2.example:8080"
  }

  assert {
    condition     = strcontains(nonsensitive(output.config), "listen = [\"0.0.0.0:8080\"]")
    error_message = "listen_address overrides the bind address"
  }
  assert {
    condition     = output.topology_entry.http == "http://198.51.100.7:8080"
    error_message = "viewers still reach the advertised address"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "admin_token = \"s3cret\"") && strcontains(nonsensitive(output.config), "drain_to = \"http://eu-west-2.example:8080\"")
    error_message = "token and drain target as given"
  }
}

run "a_host_name_address_has_no_dns_entry_by_default" {
  command = plan
  variables {
    address = "edge-7.example"
  }
  assert {
    condition     = length(output.topology_entry.dns) == 0
    error_message = "DNS answers need addresses; a host name gives none unless dns is set"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "listen = [\"0.0.0.0:8080\"]")
    error_message = "an edge known by name binds every address"
  }
}

run "ipv6_addresses_get_brackets" {
  command = plan
  variables {
    address = "2001:db8::7"
  }
  assert {
    condition     = output.topology_entry.http == "http://[2001:db8::7]:8080" && strcontains(nonsensitive(output.config), "listen = [\"[2001:db8::7]:8080\"]")
    error_message = "IPv6 in URLs and socket addresses is bracketed"
  }
  assert {
    condition     = output.topology_entry.dns == tolist(["2001:db8::7"])
    error_message = "an IPv6 address is a DNS answer too"
  }
}

run "rejects_a_host_name_to_bind" {
  command = plan
  variables {
    listen_address = "edge-7.example"
  }
  expect_failures = [var.listen_address]
}

run "rejects_a_bad_name" {
  command = plan
  variables {
    name = "EU West"
  }
  expect_failures = [var.name]
}

run "rejects_no_origin" {
  command = plan
  variables {
    origin_urls = []
  }
  expect_failures = [var.origin_urls]
}

run "rejects_a_store_size_without_unit" {
  command = plan
  variables {
    store_capacity = "8"
  }
  expect_failures = [var.store_capacity]
}

run "rejects_a_router_url_with_a_path" {
  command = plan
  variables {
    router_urls = ["http://router.example:8053/steer"]
  }
  expect_failures = [var.router_urls]
}

run "a_private_ca_and_a_host_override_reach_the_config" {
  command = plan

  variables {
    origin_ca_file = "/etc/meridian/origin-ca.pem"
    origin_host    = { "https://origin-a.example" = "media.example" }
    steering       = false
  }

  assert {
    condition     = strcontains(nonsensitive(output.config), "origin_ca_file = \"/etc/meridian/origin-ca.pem\"\norigin_host = { \"https://origin-a.example\" = \"media.example\" }\n")
    error_message = "the CA file and the Host override are rendered as the edge reads them"
  }
  assert {
    condition     = !strcontains(nonsensitive(output.config), "steering_")
    error_message = "steering: false leaves it to the origin"
  }
}

run "a_host_override_for_an_unknown_origin_is_refused" {
  command = plan

  variables {
    origin_host = { "https://elsewhere.example" = "media.example" }
  }

  expect_failures = [var.origin_host]
}

run "a_deployed_edge_installs_its_binary_serves_https_and_awaits_purges" {
  command = plan
  variables {
    admin_token   = "s3cret"
    await_purges  = true
    binary_url    = "https://releases.example/meridian/edge-aarch64"
    binary_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    tls_cert_pem  = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    tls_key_pem   = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
  }
  assert {
    condition     = strcontains(nonsensitive(output.cloud_init), "https://releases.example/meridian/edge-aarch64") && strcontains(nonsensitive(output.cloud_init), "sha256sum -c")
    error_message = "cloud-init downloads the binary and checks its checksum"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "tls_listen = [\"198.51.100.7:443\"]") && strcontains(nonsensitive(output.config), "tls_key = \"/run/credentials/meridian-edge.service/tls.key\"")
    error_message = "an HTTPS listener with the key handed over by systemd"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "LoadCredential=tls.key:/etc/meridian/tls/edge.key")
    error_message = "the unit hands the key to the dynamic user"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "await_purges = true")
    error_message = "a fleet's edge waits for the routers' purges"
  }
}


run "rejects_a_key_without_a_certificate" {
  command = plan
  variables {
    tls_key_pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
  }
  expect_failures = [var.tls_key_pem]
}

run "secrets_from_ssm_keep_the_token_and_the_key_out_of_user_data" {
  command = plan
  variables {
    admin_token      = "s3cret-token"
    tls_cert_pem     = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    tls_key_pem      = "-----BEGIN PRIVATE KEY-----\nsecret-key\n-----END PRIVATE KEY-----\n"
    secrets_from_ssm = { aws_region = "eu-west-1", config = "/meridian/edge/eu-west-1/config", tls_key = "/meridian/tls-key" }
  }
  assert {
    condition     = !strcontains(nonsensitive(output.cloud_init), "s3cret-token") && !strcontains(nonsensitive(output.cloud_init), "secret-key")
    error_message = "neither the token nor the key is in the user data"
  }
  assert {
    condition     = strcontains(nonsensitive(output.cloud_init), "/meridian/edge/eu-west-1/config") && strcontains(nonsensitive(output.cloud_init), "/meridian/tls-key")
    error_message = "the node fetches both from SSM"
  }
  assert {
    condition     = strcontains(nonsensitive(output.config), "s3cret-token")
    error_message = "the config (stored in SSM by the env) still holds the token"
  }
}
