# One process of the local fleet: its config file written (when it has one), started detached,
# waited for until it prints its `listening` lines, and stopped by its PID on destroy. Replaced
# (restarted) only when `restart_on` changes.

variable "name" {
  description = "The process's name: its log, PID and config files are named after it."
  type        = string
}

variable "run_dir" {
  description = "Where its log and PID file go."
  type        = string
}

variable "binary" {
  description = "The binary to run."
  type        = string
}

variable "args" {
  description = "Its arguments."
  type        = list(string)
}

variable "kinds" {
  description = "The `listening <kind>` lines that mean it is ready."
  type        = list(string)
}

variable "config_file" {
  description = "A file to write before it starts (null: none)."
  type        = string
  default     = null
}

variable "config" {
  description = "The content of config_file."
  type        = string
  default     = ""
  sensitive   = true
}

variable "restart_on" {
  description = "Anything whose change should restart the process (a config's hash)."
  type        = string
  default     = ""
}

locals {
  scripts = abspath("${path.module}/../scripts")
}

resource "terraform_data" "process" {
  # A new binary or new arguments restart it too; otherwise destroy would look for the old one.
  triggers_replace = [var.restart_on, var.binary, var.args]

  input = {
    name    = var.name
    run_dir = var.run_dir
    scripts = local.scripts
    binary  = var.binary
  }

  provisioner "local-exec" {
    command = "'${self.input.scripts}/write-file.sh'"
    environment = {
      FILE    = var.config_file == null ? "" : var.config_file
      CONTENT = var.config
    }
  }

  provisioner "local-exec" {
    # Every word single-quoted for the shell (a ' inside becomes '\'').
    command = join(" ", [for word in concat(["${self.input.scripts}/start.sh", self.input.binary], var.args) : "'${replace(word, "'", "'\\''")}'"])
    environment = {
      NAME    = self.input.name
      RUN_DIR = self.input.run_dir
      KINDS   = join(" ", var.kinds)
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = "'${self.input.scripts}/stop.sh'"
    environment = {
      NAME    = self.input.name
      RUN_DIR = self.input.run_dir
      BINARY  = self.input.binary
    }
  }
}

output "id" {
  description = "Changes only when the process is (re)started."
  value       = terraform_data.process.id
}
