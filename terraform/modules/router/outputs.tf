output "systemd_unit" {
  description = "A systemd unit that runs the router (SIGHUP re-reads the topology; SIGTERM drains)."
  value       = local.systemd_unit
}

output "cloud_init" {
  description = "A #cloud-config document that installs and starts the router."
  value       = local.cloud_init
  sensitive   = true # it carries the config
}
