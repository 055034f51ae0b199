# Test job for the beam driver: one allocation, short health timings.
variable "job" { type = string }
variable "task" { type = string }
variable "source" { type = string }
variable "sha256" { type = string }
variable "pre_commands" {
  type    = list(list(string))
  default = []
}
variable "cluster_service" {
  type    = string
  default = ""
}
variable "tls" {
  type    = bool
  default = false
}
variable "count" {
  type    = number
  default = 1
}
variable "hot" {
  type    = bool
  default = false
}
variable "services" {
  type    = bool
  default = true
}
variable "beam_check" {
  type    = bool
  default = true
}
variable "restarts" {
  type    = number
  default = 0
}
variable "bridge" {
  type    = bool
  default = false
}
variable "user" {
  type    = string
  default = ""
}
variable "env" {
  type    = map(string)
  default = {}
}

job "app" {
  id          = var.job
  datacenters = ["*"]

  update {
    min_healthy_time = "2s"
    healthy_deadline = "1m"
  }

  group "app" {
    count = var.count

    # With var.bridge, each allocation runs in its own network namespace,
    # on a client of class "bridge", one per client, with ports mapped
    # from the client's address.
    network {
      mode = var.bridge ? "bridge" : "host"
      port "http" {
        to = var.bridge ? 8080 : 0
      }
      port "dist" {
        to = var.bridge ? 9100 : 0
      }
    }

    dynamic "constraint" {
      for_each = var.bridge ? [["$${node.class}", "=", "bridge"], ["", "distinct_hosts", "true"]] : []
      content {
        attribute = constraint.value[0]
        operator  = constraint.value[1]
        value     = constraint.value[2]
      }
    }

    # A failed allocation stays failed, so that a failing deployment
    # fails at once rather than at its progress deadline.
    reschedule {
      attempts  = 0
      unlimited = false
    }

    restart {
      attempts = var.restarts
      delay    = "1s"
      mode     = "fail"
    }

    # Without services the job is a worker: nothing registers in Consul,
    # and tools gate on the driver's BEAM-level health instead.
    dynamic "service" {
      for_each = var.services ? [var.job] : []
      content {
        name     = service.value
        port     = "http"
        provider = "consul"

        check {
          type     = "http"
          path     = "/health"
          interval = "1s"
          timeout  = "1s"
        }
      }
    }

    # The distribution port, registered so that the nodes of this job can
    # find each other through Consul (config.cluster_service).
    dynamic "service" {
      for_each = var.services ? ["${var.job}-dist"] : []
      content {
        name     = service.value
        port     = "dist"
        provider = "consul"

        # The driver answers beam-health itself: the node has booted and
        # every application of its release runs. The benchmarks turn it
        # off, as the raw_exec job they compare with has no such check.
        dynamic "check" {
          for_each = var.beam_check ? ["beam"] : []
          content {
            name     = "beam"
            type     = "script"
            task     = "node"
            command  = "beam-health"
            interval = "1s"
            timeout  = "5s"
          }
        }
      }
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
        dist_port   = "dist"
        cookie_file = "secrets/erlang.cookie"

        pre_commands        = var.pre_commands
        pre_command_timeout = "1m"
        cluster_service     = var.cluster_service

        # A tls block when var.tls is set. Task config is not expanded for
        # `dynamic` blocks, but a list of objects reads the same.
        # Hot upgrades follow nomad/jobs/JOB/app/node through the task's
        # workload identity (see identity below).
        hot_upgrade = var.hot ? [{ enabled = true, timeout = "1m" }] : []

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

      # The cookie is a secret: a Nomad Variable that only this job's
      # workload identity can read, rendered into secrets/.
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

      # The driver reads hot-upgrade targets, and checks cluster peers
      # against the job's allocations, with this token.
      dynamic "identity" {
        for_each = var.hot || var.cluster_service != "" ? ["file"] : []
        content {
          file = true
        }
      }

      env = var.env

      kill_timeout = "20s"

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
