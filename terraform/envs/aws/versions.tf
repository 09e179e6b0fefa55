terraform {
  required_version = ">= 1.9" # validations that read other variables
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

# One provider per region (Terraform cannot for_each over providers). Add a region: a provider
# alias here, a module block in main.tf, its entry in local.fleet_regions, and its name in
# var.edges' validation.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"
}
