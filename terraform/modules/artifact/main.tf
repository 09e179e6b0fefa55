# One release artifact a node installs at first boot: the cloud-init runcmd entry that downloads
# it, checks it against its SHA-256 and only then moves it into place. modules/edge and
# modules/router use it for their binaries and the router's GeoIP database.

terraform {
  required_version = ">= 1.9" # validations that read other variables
}

variable "url" {
  description = "Where to download the artifact from (https://). Null: nothing to install (it is in the image)."
  type        = string
  default     = null
  validation {
    condition     = var.url == null || can(regex("^https://", var.url))
    error_message = "The artifact's URL must be https:// (its checksum is checked too, but fetch it privately)."
  }
}

variable "sha256" {
  description = "The artifact's SHA-256, lowercase hex (sha256sum's output)."
  type        = string
  default     = null
  validation {
    condition     = var.sha256 == null || can(regex("^[0-9a-f]{64}$", var.sha256))
    error_message = "The artifact's SHA-256: 64 lowercase hex digits (sha256sum's output)."
  }
  validation {
    condition     = (var.url == null) == (var.sha256 == null)
    error_message = "An artifact's URL and SHA-256 go together: an installed file is always checked."
  }
}

variable "path" {
  description = "Where the artifact goes on the node."
  type        = string
}

variable "mode" {
  description = "Its file mode."
  type        = string
  default     = "0755"
}

output "runcmd" {
  description = "The runcmd entry (a YAML flow sequence), or null when there is nothing to install."
  value = var.url == null ? null : format(
    "[sh, -ec, 'mkdir -p \"$(dirname \"$0\")\" && curl -fsSL --retry 10 --retry-all-errors -o \"$0.new\" \"$1\" && echo \"$2  $0.new\" | sha256sum -c - && chmod %s \"$0.new\" && mv \"$0.new\" \"$0\"', %s, %s, %s]",
    var.mode, jsonencode(var.path), jsonencode(var.url), jsonencode(var.sha256)
  )
}
