variable "origin_urls" {
  description = "The origins every edge fetches from, in order."
  type        = list(string)
}

variable "edges" {
  description = "Edges per fleet region: name, instance type, capacity (egress megabits per second, connections) and store size in GiB."
  type = map(list(object({
    name          = string
    instance_type = optional(string, "c7g.large")
    capacity      = optional(object({ egress_mbps = number, connections = number }), { egress_mbps = 5000, connections = 20000 })
    store_gib     = optional(number, 64)
  })))
  default = {
    "us-east"      = [{ name = "us-east-1" }, { name = "us-east-2" }]
    "eu-west"      = [{ name = "eu-west-1" }, { name = "eu-west-2" }]
    "ap-southeast" = [{ name = "ap-southeast-1" }]
  }
  validation {
    condition     = alltrue([for region in keys(var.edges) : contains(["us-east", "eu-west", "ap-southeast"], region)])
    error_message = "edges: the fleet regions are us-east, eu-west and ap-southeast (each has an AWS provider and a module block; see versions.tf)."
  }
}

variable "admin_cidrs" {
  description = "Who may reach the edges' admin port besides the routers (operators' networks)."
  type        = list(string)
  default     = []
}

variable "admin_token" {
  description = "The fleet's admin token: the edges' bearer token for PURGE, drain and the routers' purge pushes, and the routers' for POST /purge. It reaches the nodes through SSM."
  type        = string
  sensitive   = true
}

variable "ssh_key_name" {
  description = "An EC2 key pair present in every region (null: no SSH key)."
  type        = string
  default     = null
}

variable "zone" {
  description = "The DNS zone the routers are authoritative for (delegate it to their addresses)."
  type        = string
  default     = "cdn.example.com"
}

variable "router_peer_secret" {
  description = "The secret the geo-routers sign the views they exchange with (16+ random characters). It reaches each router's config through SSM, not user data."
  type        = string
  sensitive   = true
}

variable "edge_binary" {
  description = "The edge binary as a release artifact (an aarch64 Linux build of `cargo build --release -p edge`): where cloud-init downloads it from, and its SHA-256."
  type        = object({ url = string, sha256 = string })
}

variable "router_binary" {
  description = "The geo-router binary as a release artifact: URL and SHA-256."
  type        = object({ url = string, sha256 = string })
}

variable "geoip_database" {
  description = "A MaxMind-format City database for the routers: URL and SHA-256."
  type        = object({ url = string, sha256 = string })
}

variable "tls" {
  description = "The edges' HTTPS certificate chain and key (PEM), for the CDN's names. The key reaches the edges through SSM, not user data."
  type        = object({ cert_pem = string, key_pem = string })
  sensitive   = true
}
