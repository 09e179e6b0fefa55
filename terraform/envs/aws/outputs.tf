output "topology" {
  description = "The fleet's topology file, as both routers read it."
  value       = module.fleet_a.topology
}

output "edges" {
  description = "Every edge's topology entry."
  value       = local.edges
}

output "nameservers" {
  description = "Delegate var.zone to these addresses (NS records at the parent zone)."
  value       = [aws_eip.router_a.public_ip, aws_eip.router_b.public_ip]
}

output "router_urls" {
  description = "The routers' HTTP APIs (content steering, /r/ redirects, /fleet)."
  value       = local.router_urls
}
