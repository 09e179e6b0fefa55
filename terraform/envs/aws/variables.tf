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
}

variable "admin_cidrs" {
  description = "Who may reach the edges' admin port besides the routers (operators' networks)."
  type        = list(string)
  default     = []
}

variable "admin_token" {
  description = "The edges' bearer token for PURGE and drain."
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
  description = "The secret the geo-routers sign the views they exchange with (16+ random characters). Sensitive: it reaches each router's config in its user data."
  type        = string
  sensitive   = true
}
