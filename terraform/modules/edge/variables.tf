variable "name" {
  description = "The edge's name, unique in the fleet (it appears in X-Served-By and in DNS answers' order)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,62}$", var.name))
    error_message = "name: lower-case letters, digits and '-', at most 63 characters, e.g. \"us-east-1\"."
  }
}

variable "region" {
  description = "The region the edge belongs to (a region of the fleet's topology)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.region))
    error_message = "region: lower-case letters, digits and '-', e.g. \"eu-west\"."
  }
}

variable "capacity" {
  description = "What the edge is sized for: egress in megabits per second and viewers' connections. Written into the edge's [load] (it measures its load against them) and its topology entry (the router weighs edges by egress_mbps)."
  type        = object({ egress_mbps = number, connections = number })
  validation {
    condition     = alltrue([for v in [var.capacity.egress_mbps, var.capacity.connections] : v >= 1 && floor(v) == v])
    error_message = "capacity: egress_mbps and connections, whole numbers of at least 1."
  }
}

variable "address" {
  description = "The address viewers reach the edge at: an IP (it goes into the router's DNS answers) or a host name."
  type        = string
}

variable "dns" {
  description = "Addresses the router answers with for this edge (default: [address] when it is an IP)."
  type        = list(string)
  default     = null
}

variable "listen_address" {
  description = "The IP the edge binds (default: address when it is an IP, else 0.0.0.0). On a cloud instance, 0.0.0.0."
  type        = string
  default     = null
  validation {
    condition     = var.listen_address == null || can(cidrhost("${coalesce(var.listen_address, "0.0.0.0")}/32", 0)) || can(cidrhost("${coalesce(var.listen_address, "::")}/128", 0))
    error_message = "listen_address: an IP address (IPv4 or IPv6), e.g. \"0.0.0.0\"."
  }
}

variable "http_port" {
  description = "HTTP port. Every edge of a fleet uses the same one (HLS pathway clones carry host names only)."
  type        = number
  default     = 8080
}

variable "admin_port" {
  description = "Admin port (/healthz, /readyz, /metrics, /status, drain)."
  type        = number
  default     = 9090
}

variable "origin_urls" {
  description = "Origins, tried in order."
  type        = list(string)
  validation {
    condition     = length(var.origin_urls) > 0 && alltrue([for u in var.origin_urls : can(regex("^https?://[^/]+", u))])
    error_message = "origin_urls: at least one http:// or https:// URL."
  }
}

variable "router_urls" {
  description = "The geo-routers' HTTP API URLs. A draining edge redirects new requests to the first one's /r/, which sends each viewer to the best other edge (unless drain_to is set)."
  type        = list(string)
  validation {
    condition     = length(var.router_urls) > 0 && alltrue([for u in var.router_urls : can(regex("^https?://[^/]+$", u))])
    error_message = "router_urls: at least one http:// or https:// URL without a path, e.g. \"http://router.example:8053\"."
  }
}

variable "origin_ca_file" {
  description = "PEM file on the node of CAs trusted for HTTPS origins beside the system's (a private CA's origin). Null: the system's roots only."
  type        = string
  default     = null
}

variable "origin_host" {
  description = "Per origin URL (as in origin_urls), the Host (and TLS name) the edge sends it instead of the URL's."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for u in keys(var.origin_host) : contains(var.origin_urls, u)])
    error_message = "origin_host: every key must be one of origin_urls."
  }
}

variable "steering" {
  description = "The edge writes content steering (the first router's /steer/hls and /steer/dash) into the manifests it serves, so any packager origin gets the handover. False: the origin writes it, or nobody does."
  type        = bool
  default     = true
}

variable "drain_to" {
  description = "Where a draining edge sends new requests (a URL prefix; the request path is appended). Default: <first router URL>/r."
  type        = string
  default     = null
}

variable "store_path" {
  description = "The store file (preallocated; its index checkpoint and owner file lie beside it)."
  type        = string
  default     = "/var/lib/meridian/edge.store"
}

variable "store_capacity" {
  description = "The store's size, e.g. \"8GiB\"."
  type        = string
  default     = "1GiB"
  validation {
    condition     = can(regex("^[0-9]+(B|KiB|MiB|GiB|TiB)$", var.store_capacity))
    error_message = "store_capacity: a whole number with a unit: B, KiB, MiB, GiB or TiB, e.g. \"8GiB\"."
  }
}

variable "prefetch" {
  description = "Segments of a rendition to prefetch ahead of a viewer (0: off)."
  type        = number
  default     = 2
}

variable "admin_token" {
  description = "Bearer token for PURGE and drain (null: both are refused)."
  type        = string
  default     = null
  sensitive   = true
}

variable "binary" {
  description = "The edge binary on the node."
  type        = string
  default     = "/usr/local/bin/edge"
}

variable "config_path" {
  description = "Where the node keeps the edge's config file."
  type        = string
  default     = "/etc/meridian/edge.toml"
}

variable "binary_url" {
  description = "Where cloud-init downloads the edge binary from (a release artifact, https://), checked against binary_sha256 and installed at `binary`. Null: the binary is in the image."
  type        = string
  default     = null
}

variable "binary_sha256" {
  description = "The SHA-256 of the binary at binary_url, lowercase hex (modules/artifact checks both)."
  type        = string
  default     = null
}

variable "tls_cert_pem" {
  description = "The HTTPS listener's certificate chain (PEM). Null: no HTTPS listener."
  type        = string
  default     = null
}

variable "tls_key_pem" {
  description = "The HTTPS listener's private key (PEM)."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition     = (var.tls_cert_pem == null) == (var.tls_key_pem == null)
    error_message = "tls_key_pem and tls_cert_pem go together."
  }
}

variable "https_port" {
  description = "The HTTPS listener's port (with tls_cert_pem and tls_key_pem)."
  type        = number
  default     = 443
}

variable "await_purges" {
  description = "The edge is one of a fleet whose routers keep a purge log: after a start its store serves nothing until a majority of the routers have sent it the purges it missed. Needs admin_token."
  type        = bool
  default     = false
  validation {
    condition     = !var.await_purges || var.admin_token != null
    error_message = "await_purges needs admin_token: the routers push their purges with it."
  }
}

variable "secrets_from_ssm" {
  description = "Keep the secrets out of user data: the node fetches its config (which holds the admin token) and the TLS key from these AWS SSM SecureString parameters at first boot (the instance's role must allow ssm:GetParameter on them). Null: both are written from user data."
  type = object({
    aws_region = string
    config     = string
    tls_key    = optional(string)
  })
  default = null
  validation {
    condition     = var.secrets_from_ssm == null || var.tls_key_pem == null || try(var.secrets_from_ssm.tls_key != null, false)
    error_message = "secrets_from_ssm.tls_key: with an HTTPS listener, name the parameter holding its key too."
  }
}
