# Meridian on AWS: edges in three regions, each from modules/edge's cloud-init, and three
# geo-routers (peers: an edge leaves the answers only when two of the three see it down, and
# the loss of one router leaves a majority) in us-east-1, eu-west-1 and ap-southeast-1 that
# read the topology modules/fleet writes. Binaries and the GeoIP database come from release
# artifacts (URLs and checksums given); secrets (the admin token, the peer secret, the TLS key)
# reach the nodes through SSM SecureString parameters, not user data. Elastic IPs are allocated
# first, so every config can name every address before any instance boots.
#
# Not applied here: the AWS provider cannot be installed on the build machines. CI runs
# `terraform fmt -check` on it; keep it valid by reading (see README.md).

locals {
  fleet_regions = [
    { name = "us-east", latitude = 38.9, longitude = -77.0, neighbours = ["eu-west", "ap-southeast"] },
    { name = "eu-west", latitude = 53.3, longitude = -6.3, neighbours = ["us-east", "ap-southeast"] },
    { name = "ap-southeast", latitude = 1.35, longitude = 103.8, neighbours = ["eu-west", "us-east"] },
  ]
  router_ips   = [aws_eip.router_a.public_ip, aws_eip.router_b.public_ip, aws_eip.router_c.public_ip]
  router_urls  = [for ip in local.router_ips : "http://${ip}:8053"]
  router_cidrs = [for ip in local.router_ips : "${ip}/32"]
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
  aws_region   = "us-east-1"
  edge_binary  = var.edge_binary
  tls          = var.tls
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
  aws_region   = "eu-west-1"
  edge_binary  = var.edge_binary
  tls          = var.tls
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
  aws_region   = "ap-southeast-1"
  edge_binary  = var.edge_binary
  tls          = var.tls
  ssh_key_name = var.ssh_key_name
}

# --- geo-routers ---------------------------------------------------------------------------
# Three, one per AWS region: a majority (two) survives the loss of any one. Each router's config
# comes from modules/fleet (peers: the other two), the node from modules/router via ./router.

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

resource "aws_eip" "router_c" {
  provider = aws.ap_southeast_1
  domain   = "vpc"
  tags     = { Name = "meridian-router-c" }
}

locals {
  routers = {
    a = { eip = aws_eip.router_a, aws_region = "us-east-1" }
    b = { eip = aws_eip.router_b, aws_region = "eu-west-1" }
    c = { eip = aws_eip.router_c, aws_region = "ap-southeast-1" }
  }
}

module "fleet" {
  source   = "../../modules/fleet"
  for_each = local.routers

  regions       = local.fleet_regions
  edges         = local.edges
  topology_path = "/etc/meridian/topology.toml"
  geoip_path    = "/var/lib/meridian/GeoLite2-City.mmdb"
  router = {
    name        = "router-${each.key}"
    zone        = var.zone
    admin       = "0.0.0.0:9053" # the security group lets only peers and admin_cidrs in
    peers       = [for k, r in local.routers : "http://${r.eip.public_ip}:8053" if k != each.key]
    peer_secret = var.router_peer_secret
    admin_token = var.admin_token
  }
}

module "router_a" {
  source    = "./router"
  providers = { aws = aws.us_east_1 }

  name          = "router-a"
  aws_region    = "us-east-1"
  eip_id        = aws_eip.router_a.id
  topology      = module.fleet["a"].topology
  router_config = module.fleet["a"].router_config
  peer_cidrs    = ["${aws_eip.router_b.public_ip}/32", "${aws_eip.router_c.public_ip}/32"]
  admin_cidrs   = var.admin_cidrs
  ssh_key_name  = var.ssh_key_name
  binary_url    = var.router_binary.url
  binary_sha256 = var.router_binary.sha256
  geoip_url     = var.geoip_database.url
  geoip_sha256  = var.geoip_database.sha256
}

module "router_b" {
  source    = "./router"
  providers = { aws = aws.eu_west_1 }

  name          = "router-b"
  aws_region    = "eu-west-1"
  eip_id        = aws_eip.router_b.id
  topology      = module.fleet["b"].topology
  router_config = module.fleet["b"].router_config
  peer_cidrs    = ["${aws_eip.router_a.public_ip}/32", "${aws_eip.router_c.public_ip}/32"]
  admin_cidrs   = var.admin_cidrs
  ssh_key_name  = var.ssh_key_name
  binary_url    = var.router_binary.url
  binary_sha256 = var.router_binary.sha256
  geoip_url     = var.geoip_database.url
  geoip_sha256  = var.geoip_database.sha256
}

module "router_c" {
  source    = "./router"
  providers = { aws = aws.ap_southeast_1 }

  name          = "router-c"
  aws_region    = "ap-southeast-1"
  eip_id        = aws_eip.router_c.id
  topology      = module.fleet["c"].topology
  router_config = module.fleet["c"].router_config
  peer_cidrs    = ["${aws_eip.router_a.public_ip}/32", "${aws_eip.router_b.public_ip}/32"]
  admin_cidrs   = var.admin_cidrs
  ssh_key_name  = var.ssh_key_name
  binary_url    = var.router_binary.url
  binary_sha256 = var.router_binary.sha256
  geoip_url     = var.geoip_database.url
  geoip_sha256  = var.geoip_database.sha256
}
