# One geo-router node, rendered: its systemd unit and a cloud-init document that installs the
# binary (from a release artifact, checked against its checksum), the GeoIP database, the
# config and the topology, and starts it. modules/fleet writes the config and the topology;
# envs/ decide where the router runs.

terraform {
  required_version = ">= 1.9" # validations that read other variables
}

module "binary" {
  source = "../artifact"
  url    = var.binary_url
  sha256 = var.binary_sha256
  path   = var.binary
}

module "geoip" {
  source = "../artifact"
  url    = var.geoip_url
  sha256 = var.geoip_sha256
  path   = var.geoip_path
  mode   = "0644"
}

module "secrets" {
  source     = "../ssm-secret"
  aws_region = try(var.secrets_from_ssm.aws_region, null)
  files      = var.secrets_from_ssm == null ? {} : { "/etc/meridian/geo-router.toml" = var.secrets_from_ssm.config }
}

locals {
  systemd_unit = templatefile("${path.module}/meridian-geo-router.service.tftpl", {
    name   = var.name
    binary = var.binary
  })

  cloud_init = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    router_config = var.router_config
    topology      = var.topology
    systemd_unit  = local.systemd_unit
    binary        = var.binary
    install       = compact([module.binary.runcmd, module.geoip.runcmd])
    ssm           = var.secrets_from_ssm
    fetch         = module.secrets.runcmd
  })
}
