# Renders what the modules write for a deployed node (an edge with HTTPS, its binary from a
# release artifact and its secrets in SSM; one with everything in user data; a router), so that
# test.sh can check the files with their own tools: `cloud-init schema` and
# `systemd-analyze verify`. Nothing is created: `terraform apply` here only computes outputs.

terraform {
  required_version = ">= 1.9"
}

locals {
  sha  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
  key  = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
}

module "edge_ssm" {
  source           = "../../modules/edge"
  name             = "eu-west-1"
  region           = "eu-west"
  address          = "198.51.100.7"
  listen_address   = "0.0.0.0"
  capacity         = { egress_mbps = 5000, connections = 20000 }
  origin_urls      = ["https://origin.example.com"]
  router_urls      = ["http://198.51.100.1:8053", "http://198.51.100.2:8053", "http://198.51.100.3:8053"]
  admin_token      = "render-check-token"
  await_purges     = true
  binary_url       = "https://releases.example/meridian/edge-aarch64"
  binary_sha256    = local.sha
  tls_cert_pem     = local.cert
  tls_key_pem      = local.key
  secrets_from_ssm = { aws_region = "eu-west-1", config = "/meridian/eu-west-1/config", tls_key = "/meridian/tls-key" }
}

module "edge_plain" {
  source       = "../../modules/edge"
  name         = "us-east-1"
  region       = "us-east"
  address      = "198.51.100.8"
  capacity     = { egress_mbps = 1000, connections = 5000 }
  origin_urls  = ["http://origin.example.com"]
  router_urls  = ["http://198.51.100.1:8053"]
  admin_token  = "render-check-token"
  tls_cert_pem = local.cert
  tls_key_pem  = local.key
}

module "fleet" {
  source        = "../../modules/fleet"
  regions       = [{ name = "eu-west", latitude = 53.3, longitude = -6.3 }, { name = "us-east", latitude = 38.9, longitude = -77.0 }]
  edges         = [module.edge_ssm.topology_entry, module.edge_plain.topology_entry]
  topology_path = "/etc/meridian/topology.toml"
  geoip_path    = "/var/lib/meridian/GeoLite2-City.mmdb"
  router = {
    name        = "router-a"
    peers       = ["http://198.51.100.2:8053", "http://198.51.100.3:8053"]
    peer_secret = "render-check peer secret"
    admin_token = "render-check-token"
  }
}

module "router" {
  source           = "../../modules/router"
  name             = "router-a"
  router_config    = module.fleet.router_config
  topology         = module.fleet.topology
  binary_url       = "https://releases.example/meridian/geo-router-aarch64"
  binary_sha256    = local.sha
  secrets_from_ssm = { aws_region = "us-east-1", config = "/meridian/router-a/config" }
}

output "edge_ssm_cloud_init" {
  value = nonsensitive(module.edge_ssm.cloud_init)
}

output "edge_ssm_config" {
  value = nonsensitive(module.edge_ssm.config)
}

output "edge_plain_cloud_init" {
  value = nonsensitive(module.edge_plain.cloud_init)
}

output "edge_plain_config" {
  value = nonsensitive(module.edge_plain.config)
}

output "edge_unit" {
  value = module.edge_ssm.systemd_unit
}

output "router_cloud_init" {
  value = nonsensitive(module.router.cloud_init)
}

output "router_unit" {
  value = module.router.systemd_unit
}

output "router_config" {
  value = nonsensitive(module.fleet.router_config)
}

output "topology" {
  value = module.fleet.topology
}
