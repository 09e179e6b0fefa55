# One Meridian edge, rendered: its TOML config, a systemd unit, a cloud-init document that
# installs both, and the node's entry for the fleet's topology file. Nothing is created here;
# envs/ decide where the edge runs.

terraform {
  required_version = ">= 1.9" # validations that read other variables
}

module "binary" {
  source = "../artifact"
  url    = var.binary_url
  sha256 = var.binary_sha256
  path   = var.binary
}

module "secrets" {
  source     = "../ssm-secret"
  aws_region = try(var.secrets_from_ssm.aws_region, null)
  files = var.secrets_from_ssm == null ? {} : merge(
    { (var.config_path) = var.secrets_from_ssm.config },
    var.tls_cert_pem == null ? {} : { "/etc/meridian/tls/edge.key" = var.secrets_from_ssm.tls_key },
  )
}

locals {
  address_is_ip = can(cidrhost("${var.address}/32", 0)) || can(cidrhost("${var.address}/128", 0))
  # The edge binds an IP (a host name as `address` means: bind every address).
  listen_ip = var.listen_address != null ? var.listen_address : (local.address_is_ip ? var.address : "0.0.0.0")
  listen    = strcontains(local.listen_ip, ":") ? "[${local.listen_ip}]" : local.listen_ip
  host      = strcontains(var.address, ":") ? "[${var.address}]" : var.address
  dns       = var.dns != null ? var.dns : (local.address_is_ip ? [var.address] : [])
  drain_to  = coalesce(var.drain_to, "${var.router_urls[0]}/r")

  config = templatefile("${path.module}/edge.toml.tftpl", {
    name           = var.name
    region         = var.region
    listen         = "${local.listen}:${var.http_port}"
    admin          = "${local.listen}:${var.admin_port}"
    origins        = var.origin_urls
    origin_ca_file = var.origin_ca_file
    origin_host    = var.origin_host
    steering       = var.steering
    router         = var.router_urls[0]
    store          = var.store_path
    store_capacity = var.store_capacity
    egress_mbps    = var.capacity.egress_mbps
    connections    = var.capacity.connections
    prefetch       = var.prefetch
    drain_to       = local.drain_to
    admin_token    = var.admin_token
    await_purges   = var.await_purges
    https          = var.tls_cert_pem != null ? "${local.listen}:${var.https_port}" : null
    # systemd hands the dynamic user copies of the root-only files here (LoadCredential).
    credentials = "/run/credentials/meridian-edge.service"
  })

  systemd_unit = templatefile("${path.module}/meridian-edge.service.tftpl", {
    name        = var.name
    binary      = var.binary
    config_path = var.config_path
    store_dir   = dirname(var.store_path)
    tls         = var.tls_cert_pem != null
  })

  cloud_init = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    config       = local.config
    config_path  = var.config_path
    systemd_unit = local.systemd_unit
    store_dir    = dirname(var.store_path)
    binary       = var.binary
    install      = compact([module.binary.runcmd])
    tls_cert_pem = var.tls_cert_pem
    tls_key_pem  = var.tls_key_pem
    ssm          = var.secrets_from_ssm
    fetch        = module.secrets.runcmd
  })

  topology_entry = {
    name     = var.name
    region   = var.region
    http     = "http://${local.host}:${var.http_port}"
    admin    = "http://${local.host}:${var.admin_port}"
    dns      = local.dns
    capacity = var.capacity
  }
}
