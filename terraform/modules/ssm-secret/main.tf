# Secrets a node fetches from SSM Parameter Store at first boot: a cloud-init runcmd entry per
# file that reads a SecureString parameter (retried for five minutes, while the instance role or
# the parameter is not there yet) and writes it root-only, replacing the file only once it is
# whole. modules/edge and modules/router use it for their configs and the edge's TLS key.

terraform {
  required_version = ">= 1.9"
}

variable "aws_region" {
  description = "The region the parameters are in."
  type        = string
  default     = null
}

variable "files" {
  description = "Path on the node -> SSM parameter name (a SecureString). Empty: nothing to fetch."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for path in keys(var.files) : startswith(path, "/")])
    error_message = "Each file's path on the node is absolute."
  }
}

output "runcmd" {
  description = "One runcmd entry (a YAML flow sequence) per file, in path order."
  value = [for path, name in var.files : format(
    "[sh, -ec, 'umask 077; mkdir -p \"$(dirname \"$0\")\"; for try in $(seq 30); do aws ssm get-parameter --region \"$1\" --with-decryption --name \"$2\" --query Parameter.Value --output text > \"$0.new\" && mv \"$0.new\" \"$0\" && exit 0; sleep 10; done; exit 1', %s, %s, %s]",
    jsonencode(path), jsonencode(var.aws_region), jsonencode(name)
  )]
}
