variable "name" {
  description = "The router's name among its peers."
  type        = string
}

variable "router_config" {
  description = "The router's config file (modules/fleet's router_config). It may hold the admin token and the peer secret."
  type        = string
  sensitive   = true
}

variable "topology" {
  description = "The fleet's topology file (modules/fleet's topology), written to /etc/meridian/topology.toml."
  type        = string
}

variable "binary" {
  description = "The geo-router binary on the node."
  type        = string
  default     = "/usr/local/bin/geo-router"
}

variable "binary_url" {
  description = "Where cloud-init downloads the geo-router binary from (a release artifact, https://), checked against binary_sha256. Null: the binary is in the image."
  type        = string
  default     = null
}

variable "binary_sha256" {
  description = "The SHA-256 of the binary at binary_url, lowercase hex (modules/artifact checks both)."
  type        = string
  default     = null
}

variable "geoip_path" {
  description = "Where the GeoIP City database is on the node (the router config's geoip)."
  type        = string
  default     = "/var/lib/meridian/GeoLite2-City.mmdb"
}

variable "geoip_url" {
  description = "Where cloud-init downloads the GeoIP database from (https://), checked against geoip_sha256. Null: it is in the image."
  type        = string
  default     = null
}

variable "geoip_sha256" {
  description = "The SHA-256 of the database at geoip_url."
  type        = string
  default     = null
}

variable "secrets_from_ssm" {
  description = "Keep the secrets out of user data: the node fetches its config (admin token, peer secret) from this AWS SSM SecureString parameter at first boot (the instance's role must allow ssm:GetParameter on it). Null: the config is written from user data."
  type = object({
    aws_region = string
    config     = string
  })
  default = null
}
