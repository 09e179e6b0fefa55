variable "bin_dir" {
  description = "Where the workspace's binaries are (default: target/release of this checkout; build with `cargo build --release`)."
  type        = string
  default     = null
}

variable "run_dir" {
  description = "Where configs, stores, logs and PID files go (default: .run beside this file)."
  type        = string
  default     = null
}

variable "regions" {
  description = "The fleet's regions (the test GeoIP database places clients near these three)."
  type = list(object({
    name       = string
    latitude   = number
    longitude  = number
    neighbours = optional(list(string), [])
  }))
  default = [
    { name = "us-east", latitude = 40.71, longitude = -74.01, neighbours = ["eu-west", "ap-southeast"] },
    { name = "eu-west", latitude = 51.51, longitude = -0.13, neighbours = ["us-east", "ap-southeast"] },
    { name = "ap-southeast", latitude = 1.35, longitude = 103.82, neighbours = ["eu-west", "us-east"] },
  ]
}

variable "edges" {
  description = "The edges, by name: region, loopback address (each edge has its own; all share the HTTP port), capacity (egress megabits per second, connections), store size."
  type = map(object({
    region         = string
    address        = string
    capacity       = optional(object({ egress_mbps = number, connections = number }), { egress_mbps = 200, connections = 2000 })
    store_capacity = optional(string, "256MiB")
  }))
  default = {
    "us-east-1"      = { region = "us-east", address = "127.0.11.1" }
    "eu-west-1"      = { region = "eu-west", address = "127.0.12.1" }
    "ap-southeast-1" = { region = "ap-southeast", address = "127.0.13.1" }
  }
  validation {
    condition     = alltrue([for e in values(var.edges) : can(regex("^127\\.", e.address))])
    error_message = "edges: a local fleet lives on loopback: every address in 127.0.0.0/8."
  }
}

variable "address" {
  description = "The loopback address of the origin and the geo-router (not one an edge uses)."
  type        = string
  default     = "127.0.10.1"
}

variable "ports" {
  description = "Ports: edges' HTTP and admin, origin's, the router's DNS, HTTP API and admin."
  type = object({
    edge_http    = optional(number, 8080)
    edge_admin   = optional(number, 9090)
    origin_http  = optional(number, 8080)
    origin_admin = optional(number, 9080)
    router_dns   = optional(number, 5353)
    router_http  = optional(number, 8053)
    router_admin = optional(number, 9053)
  })
  default = {}
}

variable "admin_token" {
  description = "The edges' admin token (PURGE, drain). A local fleet's is no secret."
  type        = string
  default     = "meridian-local"
}
