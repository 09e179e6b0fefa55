# Meridian on AWS: edges in three regions, each from modules/edge's cloud-init, and two
# geo-routers (peers, so one partitioned router cannot take healthy edges out) in us-east-1 and
# eu-west-1 that read the topology modules/fleet writes. Elastic IPs are allocated first, so
# every config can name every address before any instance boots.
#
# Not applied here: the AWS provider cannot be installed on the build machines. CI runs
# `terraform fmt -check` on it; keep it valid by reading (see README.md).

locals {
  fleet_regions = [
    { name = "us-east", latitude = 38.9, longitude = -77.0, neighbours = ["eu-west", "ap-southeast"] },
    { name = "eu-west", latitude = 53.3, longitude = -6.3, neighbours = ["us-east", "ap-southeast"] },
    { name = "ap-southeast", latitude = 1.35, longitude = 103.8, neighbours = ["eu-west", "us-east"] },
  ]
  router_urls = [for ip in [aws_eip.router_a.public_ip, aws_eip.router_b.public_ip] : "http://${ip}:8053"]
  router_cidrs = [
    "${aws_eip.router_a.public_ip}/32",
    "${aws_eip.router_b.public_ip}/32",
  ]
  edges = concat(
    module.us_east.topology_entries,
    module.eu_west.topology_entries,
    module.ap_southeast.topology_entries,
  )
}

module "us_east" {
  source    = "./region"
  providers = { aws = aws.us_east_1 }

  fleet_region = "us-east"
  edges        = lookup(var.edges, "us-east", [])
  origin_urls  = var.origin_urls
  router_urls  = local.router_urls
  admin_cidrs  = concat(local.router_cidrs, var.admin_cidrs)
  admin_token  = var.admin_token
  ssh_key_name = var.ssh_key_name
}

module "eu_west" {
  source    = "./region"
  providers = { aws = aws.eu_west_1 }

  fleet_region = "eu-west"
  edges        = lookup(var.edges, "eu-west", [])
  origin_urls  = var.origin_urls
  router_urls  = local.router_urls
  admin_cidrs  = concat(local.router_cidrs, var.admin_cidrs)
  admin_token  = var.admin_token
  ssh_key_name = var.ssh_key_name
}

module "ap_southeast" {
  source    = "./region"
  providers = { aws = aws.ap_southeast_1 }

  fleet_region = "ap-southeast"
  edges        = lookup(var.edges, "ap-southeast", [])
  origin_urls  = var.origin_urls
  router_urls  = local.router_urls
  admin_cidrs  = concat(local.router_cidrs, var.admin_cidrs)
  admin_token  = var.admin_token
  ssh_key_name = var.ssh_key_name
}

# --- geo-routers ---------------------------------------------------------------------------

resource "aws_eip" "router_a" {
  provider = aws.us_east_1
  domain   = "vpc"
  tags     = { Name = "meridian-router-a" }
}

resource "aws_eip" "router_b" {
  provider = aws.eu_west_1
  domain   = "vpc"
  tags     = { Name = "meridian-router-b" }
}

module "fleet_a" {
  source        = "../../modules/fleet"
  regions       = local.fleet_regions
  edges         = local.edges
  topology_path = "/etc/meridian/topology.toml"
  geoip_path    = "/var/lib/meridian/GeoLite2-City.mmdb"
  router = {
    name        = "router-a"
    zone        = var.zone
    peers       = [local.router_urls[1]]
    peer_secret = var.router_peer_secret
  }
}

module "fleet_b" {
  source        = "../../modules/fleet"
  regions       = local.fleet_regions
  edges         = local.edges
  topology_path = "/etc/meridian/topology.toml"
  geoip_path    = "/var/lib/meridian/GeoLite2-City.mmdb"
  router = {
    name        = "router-b"
    zone        = var.zone
    peers       = [local.router_urls[0]]
    peer_secret = var.router_peer_secret
  }
}

module "router_a" {
  source    = "./router"
  providers = { aws = aws.us_east_1 }

  name          = "router-a"
  eip_id        = aws_eip.router_a.id
  topology      = module.fleet_a.topology
  router_config = module.fleet_a.router_config
  peer_cidrs    = ["${aws_eip.router_b.public_ip}/32"]
  ssh_key_name  = var.ssh_key_name
}

module "router_b" {
  source    = "./router"
  providers = { aws = aws.eu_west_1 }

  name          = "router-b"
  eip_id        = aws_eip.router_b.id
  topology      = module.fleet_b.topology
  router_config = module.fleet_b.router_config
  peer_cidrs    = ["${aws_eip.router_a.public_ip}/32"]
  ssh_key_name  = var.ssh_key_name
}
