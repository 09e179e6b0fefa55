# A test helper for envs/local's terraform test: runs one shell command at apply time; the run
# fails when the command fails. (No http or external provider can be installed here.)

variable "command" {
  description = "A bash command; its exit status is the check."
  type        = string
}

resource "terraform_data" "check" {
  triggers_replace = [var.command]

  provisioner "local-exec" {
    command     = var.command
    interpreter = ["bash", "-euo", "pipefail", "-c"]
  }
}
