# Test job for the hostile-release suite (hostile_test.go): beam.nomad.hcl
# cut down, with the task's user, the node name and the restart policy as
# variables. The cookie template is the same: a Nomad Variable that only
# this job's workload identity reads.
variable "job" { type = string }
variable "task" { type = string }
variable "source" { type = string }
variable "sha256" { type = string }
variable "user" {
  type    = string
  default = ""
}
variable "node_name" {
  type    = string
  default = ""
}
variable "restarts" {
  type    = number
  default = 0
}
variable "cluster_service" {
  type    = string
  default = ""
}
variable "tls" {
  type    = bool
  default = false
}

job "hostile" {
  id          = var.job
  datacenters = ["*"]

  group "app" {
    network {
      port "http" {}
      port "dist" {}
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    restart {
      attempts = var.restarts
      delay    = "1s"
      mode     = "fail"
    }

    # The distribution port, so that cluster_service can name the job's
    # own instances. No check: an instance without checks is passing.
    service {
      name     = "${var.job}-dist"
      port     = "dist"
      provider = "consul"
    }

    task "node" {
      driver = "beam"
      user   = var.user

      config {
        release {
          source = var.source
          sha256 = var.sha256
          name   = var.task
        }
        node_name       = var.node_name
        dist_port       = "dist"
        cookie_file     = "secrets/erlang.cookie"
        cluster_service = var.cluster_service

        tls = var.tls ? [{
          cert_file = "secrets/dist.crt"
          key_file  = "secrets/dist.key"
          ca_file   = "secrets/ca.crt"
        }] : []
      }

      dynamic "template" {
        for_each = var.tls ? ["tls_cert:dist.crt", "tls_key:dist.key", "tls_ca:ca.crt"] : []
        content {
          data        = "{{ with nomadVar \"nomad/jobs/${var.job}\" }}{{ index . \"${split(":", template.value)[0]}\" }}{{ end }}"
          destination = "secrets/${split(":", template.value)[1]}"
          perms       = "0400"
        }
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/${var.job}\" }}{{ .cookie }}{{ end }}"
        destination = "secrets/erlang.cookie"
        perms       = "0400"
      }

      # Clustering lists the service's instances from Consul with the
      # task's own Consul token (secrets/consul_token), which Nomad makes
      # from the task's Consul workload identity when it has a consul block.
      dynamic "consul" {
        for_each = var.cluster_service != "" ? ["consul"] : []
        content {}
      }

      # The driver checks cluster peers against the job's allocations with
      # this token.
      dynamic "identity" {
        for_each = var.cluster_service != "" ? ["file"] : []
        content {
          file = true
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
