# Test job for the trust-boundary suite (trust_test.go): a release with no
# distribution, in a namespace of the test's choosing, so that the source
# policy of that namespace decides what the driver may fetch. No template:
# a task whose fetch is refused must fail at once, not wait on a Variable.
variable "job" { type = string }
variable "namespace" { type = string }
variable "task" { type = string }
variable "source" { type = string }
variable "sha256" { type = string }
variable "aws_role" {
  type    = string
  default = ""
}

job "source" {
  id          = var.job
  namespace   = var.namespace
  datacenters = ["*"]

  group "app" {
    network {
      port "http" {}
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "node" {
      driver = "beam"

      config {
        release {
          source = var.source
          sha256 = var.sha256
          name   = var.task
        }

        # With var.aws_role, S3 fetches assume that role with the task's
        # workload identity "aws" (a list of objects reads as a block).
        aws_identity = var.aws_role != "" ? [{ name = "aws", role_arn = var.aws_role }] : []
      }

      dynamic "identity" {
        for_each = var.aws_role != "" ? ["aws"] : []
        content {
          name = "aws"
          aud  = ["sts.amazonaws.com"]
          file = true
          ttl  = "1h"
        }
      }

      kill_timeout = "10s"

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
