# A fleet, described: regions and edges in, the topology file and the geo-router's config out.
# The topology is the same format the router, the local launcher and the edge tests read
# (topology/src/lib.rs); the router refuses a file that breaks its rules, so they are checked
# here too, before anything is deployed.

terraform {
  required_version = ">= 1.9" # validations that read other variables
}

locals {
  region_names = [for r in var.regions : r.name]

  topology = templatefile("${path.module}/topology.toml.tftpl", {
    regions = var.regions
    edges   = var.edges
  })

  router_config = templatefile("${path.module}/geo-router.toml.tftpl", {
    router   = var.router
    topology = var.topology_path
    geoip    = var.geoip_path
  })
}
