variable "regions" {
  description = "The fleet's regions: name, latitude and longitude (for the router's great-circle distance), and an optional failover order."
  type = list(object({
    name       = string
    latitude   = number
    longitude  = number
    neighbours = optional(list(string), [])
  }))
  validation {
    condition     = length(var.regions) > 0 && length(distinct([for r in var.regions : r.name])) == length(var.regions)
    error_message = "regions: at least one, and every name once."
  }
  validation {
    condition     = alltrue([for r in var.regions : abs(r.latitude) <= 90 && abs(r.longitude) <= 180])
    error_message = "regions: latitude within ±90 and longitude within ±180."
  }
}

variable "edges" {
  description = "The edges: each modules/edge's topology_entry output."
  type = list(object({
    name     = string
    region   = string
    http     = string
    admin    = string
    dns      = list(string)
    capacity = object({ egress_mbps = number, connections = number })
  }))
  validation {
    condition     = length(distinct([for e in var.edges : e.name])) == length(var.edges)
    error_message = "edges: every name once."
  }
  validation {
    condition     = alltrue([for e in var.edges : contains([for r in var.regions : r.name], e.region)])
    error_message = "edges: every edge's region must be one of var.regions."
  }
  validation {
    condition     = alltrue([for e in var.edges : e.capacity.egress_mbps >= 1 && e.capacity.connections >= 1])
    error_message = "edges: capacity.egress_mbps and capacity.connections must be at least 1."
  }
}

variable "topology_path" {
  description = "Where the router will find the topology file (written into its config)."
  type        = string
}

variable "geoip_path" {
  description = "The MaxMind-format GeoIP database the router reads."
  type        = string
}

variable "router" {
  description = "The geo-router's own settings."
  type = object({
    name          = optional(string, "router-1")
    dns           = optional(string, "0.0.0.0:53")
    http          = optional(string, "0.0.0.0:8053")
    admin         = optional(string, "127.0.0.1:9053")
    zone          = optional(string, "meridian.test")
    service_names = optional(list(string), ["video"])
    peers         = optional(list(string), [])
    peer_secret   = optional(string)
    admin_token   = optional(string)
    purge_log     = optional(string, "/var/lib/meridian-geo-router/purges.jsonl")
    dev_mode      = optional(bool, false)
    ttl           = optional(string, "20s")
    steering_ttl  = optional(string, "5s")
  })
  default = {}
  validation {
    condition     = length(var.router.peers) == 0 || try(length(var.router.peer_secret) >= 16, false)
    error_message = "router.peer_secret: routers with peers sign the views they exchange; give every router of the fleet the same random secret of 16 characters or more."
  }
}
