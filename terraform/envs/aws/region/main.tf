# The edges of one fleet region in one AWS region: a security group, an instance role that may
# read the region's secrets from SSM, and per edge an Elastic IP, modules/edge's cloud-init
# (binary from the release artifact, HTTPS, secrets from SSM), its config as an SSM
# SecureString parameter, and an instance. Instantiated once per provider alias.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "fleet_region" {
  type = string
}

variable "edges" {
  type = list(object({
    name          = string
    instance_type = string
    capacity      = object({ egress_mbps = number, connections = number })
    store_gib     = number
  }))
}

variable "origin_urls" {
  type = list(string)
}

variable "router_urls" {
  type = list(string)
}

variable "admin_cidrs" {
  type = list(string)
}

variable "admin_token" {
  type      = string
  sensitive = true
}

variable "ssh_key_name" {
  type = string
}

variable "aws_region" {
  type = string
}

variable "edge_binary" {
  type = object({ url = string, sha256 = string })
}

variable "tls" {
  type      = object({ cert_pem = string, key_pem = string })
  sensitive = true
}

data "aws_vpc" "default" {
  default = true
}

# Debian 12 (bookworm), arm64, from Debian's own account.
data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"]
  filter {
    name   = "name"
    values = ["debian-12-arm64-*"]
  }
}

resource "aws_security_group" "edge" {
  name_prefix = "meridian-edge-${var.fleet_region}"
  description = "Meridian edges: HTTP and HTTPS from anyone, admin from the routers and operators"
  vpc_id      = data.aws_vpc.default.id

  ingress {
    description = "HTTP (segments, playlists)"
    from_port   = 8080
    to_port     = 8080
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "HTTPS (segments, playlists)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "Admin: health and load probes, purge pushes, metrics, drain"
    from_port   = 9090
    to_port     = 9090
    protocol    = "tcp"
    cidr_blocks = var.admin_cidrs
  }
  egress {
    description = "Origins, package mirrors"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_eip" "edge" {
  for_each = { for e in var.edges : e.name => e }
  domain   = "vpc"
  tags     = { Name = "meridian-${each.key}" }
}

module "edge" {
  source   = "../../../modules/edge"
  for_each = { for e in var.edges : e.name => e }

  name           = each.key
  region         = var.fleet_region
  capacity       = each.value.capacity
  address        = aws_eip.edge[each.key].public_ip
  listen_address = "0.0.0.0"
  origin_urls    = var.origin_urls
  router_urls    = var.router_urls
  store_capacity = "${each.value.store_gib}GiB"
  admin_token    = var.admin_token
  await_purges   = true
  binary_url     = var.edge_binary.url
  binary_sha256  = var.edge_binary.sha256
  tls_cert_pem   = var.tls.cert_pem
  tls_key_pem    = var.tls.key_pem
  secrets_from_ssm = {
    aws_region = var.aws_region
    config     = "/meridian/edge/${each.key}/config"
    tls_key    = "/meridian/edge-tls-key/${var.fleet_region}"
  }
}

# The secrets, where the instances fetch them at first boot (modules/edge's secrets_from_ssm).
resource "aws_ssm_parameter" "config" {
  for_each = module.edge
  name     = "/meridian/edge/${each.key}/config"
  type     = "SecureString"
  value    = each.value.config
}

resource "aws_ssm_parameter" "tls_key" {
  name  = "/meridian/edge-tls-key/${var.fleet_region}"
  type  = "SecureString"
  value = var.tls.key_pem
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "edge" {
  name_prefix        = "meridian-edge-${var.fleet_region}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "secrets" {
  statement {
    actions   = ["ssm:GetParameter"]
    resources = concat([for p in aws_ssm_parameter.config : p.arn], [aws_ssm_parameter.tls_key.arn])
  }
}

resource "aws_iam_role_policy" "secrets" {
  name   = "read-the-region-edges-secrets"
  role   = aws_iam_role.edge.id
  policy = data.aws_iam_policy_document.secrets.json
}

resource "aws_iam_instance_profile" "edge" {
  name_prefix = "meridian-edge-${var.fleet_region}"
  role        = aws_iam_role.edge.name
}

resource "aws_instance" "edge" {
  for_each = { for e in var.edges : e.name => e }

  ami                    = data.aws_ami.debian.id
  instance_type          = each.value.instance_type
  key_name               = var.ssh_key_name
  iam_instance_profile   = aws_iam_instance_profile.edge.name
  vpc_security_group_ids = [aws_security_group.edge.id]
  # The node reads its secrets at its one first boot: the role may by then.
  depends_on = [aws_iam_role_policy.secrets]
  user_data  = module.edge[each.key].cloud_init
  # A changed config replaces the instance: edges are cattle, and the router moves viewers.
  user_data_replace_on_change = true

  root_block_device {
    # The store is preallocated in full: room for it and the system.
    volume_size = 16 + each.value.store_gib
    volume_type = "gp3"
  }

  tags = { Name = "meridian-${each.key}", "meridian:region" = var.fleet_region }

  lifecycle {
    # The config lives in SSM: a new one replaces the instance, as a new user data does.
    replace_triggered_by = [aws_ssm_parameter.config[each.key]]
  }
}

resource "aws_eip_association" "edge" {
  for_each      = aws_instance.edge
  instance_id   = each.value.id
  allocation_id = aws_eip.edge[each.key].id
}

output "topology_entries" {
  value = [for name in sort(keys(module.edge)) : module.edge[name].topology_entry]
}
