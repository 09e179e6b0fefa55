# One geo-router instance: DNS (UDP and TCP 53) and the HTTP API open to viewers (peers' view
# polls and purge copies come there too, signed), the admin port (fleet purges, metrics) to its
# peers and the operators only. The node is rendered by modules/router: the binary and the
# GeoIP database from release artifacts, the config (admin token, peer secret) from an SSM
# SecureString parameter, not from user data.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name" {
  type = string
}

variable "aws_region" {
  type = string
}

variable "eip_id" {
  type = string
}

variable "topology" {
  type = string
}

variable "router_config" {
  type      = string
  sensitive = true
}

variable "peer_cidrs" {
  type = list(string)
}

variable "admin_cidrs" {
  type = list(string)
}

variable "ssh_key_name" {
  type = string
}

variable "instance_type" {
  type    = string
  default = "c7g.medium"
}

variable "binary_url" {
  type = string
}

variable "binary_sha256" {
  type = string
}

variable "geoip_url" {
  type = string
}

variable "geoip_sha256" {
  type = string
}

data "aws_vpc" "default" {
  default = true
}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"]
  filter {
    name   = "name"
    values = ["debian-12-arm64-*"]
  }
}

resource "aws_ssm_parameter" "config" {
  name  = "/meridian/${var.name}/config"
  type  = "SecureString"
  value = var.router_config
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

resource "aws_iam_role" "router" {
  name_prefix        = "meridian-${var.name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "config" {
  statement {
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.config.arn]
  }
}

resource "aws_iam_role_policy" "config" {
  name   = "read-its-config"
  role   = aws_iam_role.router.id
  policy = data.aws_iam_policy_document.config.json
}

resource "aws_iam_instance_profile" "router" {
  name_prefix = "meridian-${var.name}"
  role        = aws_iam_role.router.name
}

module "node" {
  source = "../../../modules/router"

  name             = var.name
  router_config    = var.router_config
  topology         = var.topology
  binary_url       = var.binary_url
  binary_sha256    = var.binary_sha256
  geoip_url        = var.geoip_url
  geoip_sha256     = var.geoip_sha256
  secrets_from_ssm = { aws_region = var.aws_region, config = aws_ssm_parameter.config.name }
}

resource "aws_security_group" "router" {
  name_prefix = "meridian-${var.name}"
  description = "Meridian geo-router: DNS and steering from anyone, admin from peers and operators"
  vpc_id      = data.aws_vpc.default.id

  ingress {
    description = "DNS over UDP"
    from_port   = 53
    to_port     = 53
    protocol    = "udp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "DNS over TCP"
    from_port   = 53
    to_port     = 53
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "HTTP API: steering manifests, redirects; signed views and purge copies from peers"
    from_port   = 8053
    to_port     = 8053
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "Admin: fleet purges, metrics, status"
    from_port   = 9053
    to_port     = 9053
    protocol    = "tcp"
    cidr_blocks = concat(var.peer_cidrs, var.admin_cidrs)
  }
  egress {
    description = "Edge probes and purge pushes, peers, artifacts, SSM"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "router" {
  ami                    = data.aws_ami.debian.id
  instance_type          = var.instance_type
  key_name               = var.ssh_key_name
  iam_instance_profile   = aws_iam_instance_profile.router.name
  vpc_security_group_ids = [aws_security_group.router.id]
  # The node reads its config at its one first boot: the role may by then.
  depends_on = [aws_iam_role_policy.config]
  user_data  = module.node.cloud_init
  # cloud-init writes files only at first boot, so a new topology or config means a new
  # instance; the new one is up before the old goes, and the Elastic IP moves over.
  user_data_replace_on_change = true
  tags                        = { Name = "meridian-${var.name}" }

  lifecycle {
    create_before_destroy = true
    # The config lives in SSM: a new one replaces the instance too.
    replace_triggered_by = [aws_ssm_parameter.config]
  }
}

resource "aws_eip_association" "router" {
  instance_id   = aws_instance.router.id
  allocation_id = var.eip_id
}
