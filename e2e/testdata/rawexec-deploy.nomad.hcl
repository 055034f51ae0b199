# Baseline for the rolling-deploy benchmark: jobspecs/hello_erl.nomad.hcl's
# update, restart, reschedule, service and stop settings, with the same
# relx release under raw_exec and an artifact block, epmd-less
# (ERL_DIST_PORT), as an operator would run it without the beam driver.
variable "release_source" { type = string }
variable "release_sha256" { type = string }
variable "count" {
  type    = number
  default = 2
}
variable "shutdown_delay" {
  type    = string
  default = "5s"
}

job "hello-erl-raw" {
  datacenters = ["*"]

  update {
    max_parallel      = 1
    canary            = 1
    auto_promote      = true
    auto_revert       = true
    health_check      = "checks"
    min_healthy_time  = "5s"
    healthy_deadline  = "2m"
    progress_deadline = "5m"
  }

  group "web" {
    count = var.count

    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "fail"
    }

    network {
      port "http" {}
      port "dist" {}
    }

    service {
      name     = "hello-erl-raw"
      port     = "http"
      provider = "consul"

      check {
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "hello_erl" {
      driver = "raw_exec"

      artifact {
        source      = var.release_source
        destination = "local/rel"
        options {
          checksum = "sha256:${var.release_sha256}"
        }
      }

      env {
        ERL_DIST_PORT = "${NOMAD_PORT_dist}"
      }

      template {
        data        = "RELX_COOKIE={{ with nomadVar \"nomad/jobs/hello-erl-raw\" }}{{ .cookie }}{{ end }}"
        destination = "secrets/cookie.env"
        env         = true
      }

      config {
        command = "local/rel/bin/hello_erl"
        args    = ["foreground"]
      }

      kill_signal    = "SIGTERM"
      kill_timeout   = "15s"
      shutdown_delay = var.shutdown_delay

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
