# One geo-router instance: DNS (UDP and TCP 53) and the HTTP API open to viewers, the admin and
# peer view to its peer routers only; config and topology from modules/fleet via cloud-init.

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

variable "eip_id" {
  type = string
}

variable "topology" {
  type = string
}

variable "router_config" {
  type = string
}

variable "peer_cidrs" {
  type = list(string)
}

variable "ssh_key_name" {
  type = string
}

variable "instance_type" {
  type    = string
  default = "c7g.medium"
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

resource "aws_security_group" "router" {
  name        = "meridian-${var.name}"
  description = "Meridian geo-router: DNS and steering from anyone, admin from peers"
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
    description = "HTTP API: steering manifests, redirects; /view for peers"
    from_port   = 8053
    to_port     = 8053
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "Admin"
    from_port   = 9053
    to_port     = 9053
    protocol    = "tcp"
    cidr_blocks = var.peer_cidrs
  }
  egress {
    description = "Edge probes"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

locals {
  unit = <<-EOT
    [Unit]
    Description=Meridian geo-router ${var.name}
    Wants=network-online.target
    After=network-online.target

    [Service]
    ExecStart=/usr/local/bin/geo-router --config /etc/meridian/geo-router.toml
    # SIGHUP re-reads the topology; a bad file is refused and the old one kept.
    ExecReload=/bin/kill -HUP $MAINPID
    Restart=on-failure
    DynamicUser=yes
    AmbientCapabilities=CAP_NET_BIND_SERVICE

    [Install]
    WantedBy=multi-user.target
  EOT

  cloud_init = <<-EOT
    #cloud-config
    # The geo-router binary and the GeoIP database are expected in the image.
    write_files:
      - path: /etc/meridian/geo-router.toml
        content: |
          ${indent(6, var.router_config)}
      - path: /etc/meridian/topology.toml
        content: |
          ${indent(6, var.topology)}
      - path: /etc/systemd/system/meridian-geo-router.service
        content: |
          ${indent(6, local.unit)}
    runcmd:
      - systemctl daemon-reload
      - systemctl enable --now meridian-geo-router.service
  EOT
}

resource "aws_instance" "router" {
  ami                    = data.aws_ami.debian.id
  instance_type          = var.instance_type
  key_name               = var.ssh_key_name
  vpc_security_group_ids = [aws_security_group.router.id]
  user_data              = local.cloud_init
  # cloud-init writes files only at first boot, so a new topology or config means a new
  # instance; the new one is up before the old goes, and the Elastic IP moves over.
  user_data_replace_on_change = true
  tags                        = { Name = "meridian-${var.name}" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_eip_association" "router" {
  instance_id   = aws_instance.router.id
  allocation_id = var.eip_id
}
