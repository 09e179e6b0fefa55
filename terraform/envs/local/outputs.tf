output "router" {
  description = "The geo-router: its HTTP API (steering, /r/ redirects, /fleet) and its DNS."
  value = {
    http = "http://${local.router_http}"
    dns  = "${var.address}:${var.ports.router_dns}"
  }
}

output "origin" {
  description = "The origin's URL."
  value       = local.origin_url
}

output "edges" {
  description = "Every edge's topology entry, by name."
  value       = { for name, e in module.edge : name => e.topology_entry }
}

output "edge_ids" {
  description = "The terraform_data ID of each running edge: it changes only when that edge is (re)started."
  value       = { for name, p in module.edge_process : name => p.id }
}

output "run_dir" {
  description = "Configs, stores, logs and PID files."
  value       = local.run_dir
}

output "try" {
  description = "A segment through the router, as a viewer in Boston would fetch it."
  value       = "curl -sL -D - -o /dev/null 'http://${local.router_http}/r/vod/big-clock/720p/seg_00001.m4s?client=192.0.2.10'"
}
