output "topology" {
  description = "The fleet's topology file, as every router reads it."
  value       = module.fleet["a"].topology
}

output "edges" {
  description = "Every edge's topology entry."
  value       = local.edges
}

output "nameservers" {
  description = "Delegate var.zone to these addresses (NS records at the parent zone)."
  value       = local.router_ips
}

output "router_urls" {
  description = "The routers' HTTP APIs (content steering, /r/ redirects, /fleet)."
  value       = local.router_urls
}
