output "topology" {
  description = "The topology file (TOML)."
  value       = local.topology
}

output "router_config" {
  description = "The geo-router's config file (TOML)."
  value       = local.router_config
}

output "regions_without_edges" {
  description = "Regions no edge serves yet (the router ranks them last)."
  value       = [for r in local.region_names : r if !contains([for e in var.edges : e.region], r)]
}
