# A whole Meridian fleet on this machine: origin, edges and geo-router as background processes
# (terraform_data + local-exec), from the same modules a cloud deployment uses. Adding an edge
# to var.edges and applying again starts exactly that edge, rewrites the topology and sends the
# router SIGHUP; nothing else restarts. `terraform destroy` stops every process by its PID.

terraform {
  required_version = ">= 1.9" # validations that read other variables
}

locals {
  repo    = abspath("${path.module}/../../..")
  bin_dir = var.bin_dir != null ? abspath(var.bin_dir) : "${local.repo}/target/release"
  run_dir = var.run_dir != null ? abspath(var.run_dir) : abspath("${path.module}/.run")
  scripts = abspath("${path.module}/scripts")

  origin_url  = "http://${var.address}:${var.ports.origin_http}"
  router_http = "${var.address}:${var.ports.router_http}"
}

module "edge" {
  source   = "../../modules/edge"
  for_each = var.edges

  name           = each.key
  region         = each.value.region
  capacity       = each.value.capacity
  address        = each.value.address
  http_port      = var.ports.edge_http
  admin_port     = var.ports.edge_admin
  origin_urls    = [local.origin_url]
  router_urls    = ["http://${local.router_http}"]
  store_path     = "${local.run_dir}/${each.key}.store"
  store_capacity = each.value.store_capacity
  admin_token    = var.admin_token
  binary         = "${local.bin_dir}/edge"
  config_path    = "${local.run_dir}/${each.key}.toml"
}

module "fleet" {
  source = "../../modules/fleet"

  regions       = var.regions
  edges         = [for name in sort(keys(var.edges)) : module.edge[name].topology_entry]
  topology_path = "${local.run_dir}/topology.toml"
  geoip_path    = "${local.repo}/testdata/geoip/meridian-city.mmdb"
  router = {
    name         = "local"
    dns          = "${var.address}:${var.ports.router_dns}"
    http         = local.router_http
    admin        = "${var.address}:${var.ports.router_admin}"
    dev_mode     = true # one machine: ?client= and ECS stand in for viewers' addresses
    ttl          = "5s"
    steering_ttl = "2s"
  }
}

module "origin" {
  source = "./process"

  name    = "origin"
  run_dir = local.run_dir
  binary  = "${local.bin_dir}/origin"
  args = [
    "--media", "${local.repo}/testdata/media",
    "--listen", "${var.address}:${var.ports.origin_http}",
    "--admin", "${var.address}:${var.ports.origin_admin}",
  ]
  kinds = ["http", "admin"]
}

module "edge_process" {
  source   = "./process"
  for_each = var.edges

  name        = each.key
  run_dir     = local.run_dir
  binary      = "${local.bin_dir}/edge"
  args        = ["--config", "${local.run_dir}/${each.key}.toml"]
  kinds       = ["http", "admin"]
  config_file = "${local.run_dir}/${each.key}.toml"
  config      = module.edge[each.key].config
  # A changed config restarts that edge (and only that one); its store survives, so it
  # restarts warm.
  restart_on = sha256(module.edge[each.key].config)

  depends_on = [module.origin]
}

# The topology file changes when an edge comes or goes: written after the edges are up, and the
# running router re-reads it on SIGHUP (it refuses a bad file and keeps the old one).
resource "terraform_data" "topology" {
  triggers_replace = [module.fleet.topology]

  provisioner "local-exec" {
    command = "'${local.scripts}/write-file.sh'"
    environment = {
      FILE           = "${local.run_dir}/topology.toml"
      CONTENT        = module.fleet.topology
      RELOAD_PIDFILE = "${local.run_dir}/geo-router.pid"
    }
  }

  depends_on = [module.edge_process]
}

module "router" {
  source = "./process"

  name        = "geo-router"
  run_dir     = local.run_dir
  binary      = "${local.bin_dir}/geo-router"
  args        = ["--config", "${local.run_dir}/geo-router.toml"]
  kinds       = ["dns-udp", "dns-tcp", "http", "admin"]
  config_file = "${local.run_dir}/geo-router.toml"
  config      = module.fleet.router_config
  restart_on  = sha256(module.fleet.router_config)

  depends_on = [terraform_data.topology, module.origin]
}
