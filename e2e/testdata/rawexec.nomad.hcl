# Baseline: the same relx release under raw_exec, fetched with an artifact
# block, epmd-less (ERL_DIST_PORT), as an operator would run it without the
# beam driver.
variable "job" { type = string }
variable "task" { type = string }
variable "source" { type = string }
variable "sha256" { type = string }
# exec runs the same job under Nomad's exec driver, whose chroot the client
# builds for every task: the other candidate for file-system isolation.
variable "driver" {
  type    = string
  default = "raw_exec"
}
variable "count" {
  type    = number
  default = 1
}

job "app" {
  id          = var.job
  datacenters = ["*"]

  group "app" {
    count = var.count

    network {
      port "http" {}
      port "dist" {}
    }

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "node" {
      driver = var.driver

      artifact {
        source      = var.source
        destination = "local/rel"
        options {
          checksum = "sha256:${var.sha256}"
        }
      }

      env {
        ERL_DIST_PORT = "${NOMAD_PORT_dist}"
      }

      # The cookie from the same Nomad Variable as the beam jobs, the way an
      # operator would give it to relx without the driver.
      template {
        data        = "RELX_COOKIE={{ with nomadVar \"nomad/jobs/${var.job}\" }}{{ .cookie }}{{ end }}"
        destination = "secrets/cookie.env"
        env         = true
      }

      config {
        command = "local/rel/bin/${var.task}"
        args    = ["foreground"]
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "20s"

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
