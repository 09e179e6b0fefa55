output "config" {
  description = "The edge's TOML config file."
  value       = local.config
  sensitive   = true # it may hold the admin token
}

output "systemd_unit" {
  description = "A systemd unit that runs the edge (SIGTERM drains: the unit gives it the grace to)."
  value       = local.systemd_unit
}

output "cloud_init" {
  description = "A #cloud-config document that writes the config and the unit and starts the edge."
  value       = local.cloud_init
  sensitive   = true # it carries the config
}

output "topology_entry" {
  description = "The node's [[edges]] entry for the fleet's topology file (modules/fleet takes a list of these)."
  value       = local.topology_entry
}
