# Plans modules/router and checks the unit and cloud-init it writes (test.sh also runs them
# through cloud-init schema and systemd-analyze verify).

variables {
  name          = "router-a"
  router_config = "name = \"router-a\"\nadmin_token = \"t\"\npurge_log = \"/var/lib/meridian-geo-router/purges.jsonl\"\n"
  topology      = "[[regions]]\nname = \"us-east\"\nlatitude = 40.71\nlongitude = -74.01\n"
}

run "renders_a_unit_that_keeps_the_config_root_only_and_the_purge_log" {
  command = plan
  assert {
    condition     = strcontains(output.systemd_unit, "LoadCredential=geo-router.toml:/etc/meridian/geo-router.toml") && strcontains(output.systemd_unit, "StateDirectory=meridian-geo-router")
    error_message = "the config by credential, the purge log in the state directory"
  }
  assert {
    condition     = strcontains(nonsensitive(output.cloud_init), "permissions: \"0600\"") && !strcontains(nonsensitive(output.cloud_init), "curl")
    error_message = "a root-only config, and no download without a URL"
  }
}

run "installs_the_binary_and_the_geoip_database_from_release_artifacts" {
  command = plan
  variables {
    binary_url    = "https://releases.example/meridian/geo-router-aarch64"
    binary_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    geoip_url     = "https://releases.example/geoip/city.mmdb"
    geoip_sha256  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
  }
  assert {
    condition     = strcontains(nonsensitive(output.cloud_init), "geo-router-aarch64") && strcontains(nonsensitive(output.cloud_init), "city.mmdb")
    error_message = "both artifacts are fetched"
  }
}


run "secrets_from_ssm_keep_the_config_out_of_user_data" {
  command = plan
  variables {
    secrets_from_ssm = { aws_region = "us-east-1", config = "/meridian/router-a/config" }
  }
  assert {
    condition     = !strcontains(nonsensitive(output.cloud_init), "admin_token") && strcontains(nonsensitive(output.cloud_init), "/meridian/router-a/config")
    error_message = "the config (with the token) is fetched, not carried"
  }
}
