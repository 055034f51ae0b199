# The example Elixir app (a `mix release`) run by the beam driver.
#
#   nomad job run \
#     -var release_source=https://releases.example.com/hello_ex-0.1.0.tar.gz \
#     -var release_sha256=$(sha256sum hello_ex-0.1.0.tar.gz | cut -d' ' -f1) \
#     jobspecs/hello_ex.nomad.hcl

variable "release_source" {
  type        = string
  description = "Where the release tarball is: file:///..., http(s)://..."
}

variable "release_sha256" {
  type        = string
  description = "sha256sum of the tarball; the task fails if it does not match."
}

variable "env" {
  type        = map(string)
  default     = {}
  description = "Extra environment for the node, for example {LOG_LEVEL = \"debug\"}."
}

variable "count" {
  type    = number
  default = 1
}

job "hello-ex" {
  datacenters = ["*"]

  # A new release (new config.release) is a Nomad deployment: one canary
  # first, promoted once its Consul checks have passed for
  # min_healthy_time, then the rest one at a time; a deployment that fails
  # goes back to the last good job version by itself. Hot upgrades
  # (beamctl upgrade) do not go through here: they change no jobspec.
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

    # A node that crashes is restarted in place (same allocation, same
    # release on disk, hot upgrades included) a few times, then Nomad
    # places the allocation elsewhere, waiting longer each time.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "fail"
    }

    reschedule {
      delay          = "15s"
      delay_function = "exponential"
      max_delay      = "5m"
      unlimited      = true
    }

    network {
      # The app reads NOMAD_PORT_http.
      port "http" {}
      # Erlang distribution listens here; no epmd runs.
      port "dist" {}
    }

    service {
      name     = "hello-ex"
      port     = "http"
      provider = "consul"

      check {
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"
      }
    }

    # The distribution port, so that the nodes of this job find each other
    # through Consul (config.cluster_service below). Erlang distribution is
    # not HTTP: its check asks the node itself.
    service {
      name     = "hello-ex-dist"
      port     = "dist"
      provider = "consul"

      # A BEAM-level check beside the HTTP one: the node has finished
      # booting and every application of its release runs. The driver
      # answers beam-health itself, through the node's control channel.
      check {
        name     = "beam"
        type     = "script"
        task     = "hello_ex"
        command  = "beam-health"
        interval = "5s"
        timeout  = "3s"
      }
    }

    task "hello_ex" {
      driver = "beam"

      config {
        release {
          source = var.release_source
          sha256 = var.release_sha256
        }
        dist_port   = "dist"
        cookie_file = "secrets/erlang.cookie"

        # Take relup hot upgrades in place: the driver follows the Nomad
        # Variable nomad/jobs/hello-ex/web/TASK (one key per allocation, written
        # by `beamctl upgrade`) through the task's workload identity.
        hot_upgrade {}

        # Keep every node connected to all healthy instances of the job.
        # With ACLs on, the job needs read-job to check peers against its
        # allocations: see "Clustering through Consul" in the README.
        cluster_service = "hello-ex-dist"
      }

      env = var.env

      # The distribution cookie is a secret. Keep it in a Nomad Variable
      # that only this job can read, and let Nomad render it into secrets/:
      #
      #   nomad var put nomad/jobs/hello-ex cookie=...
      #
      # The driver hands it to the node through a private HOME, so it never
      # appears in a command line, a log or a task event.
      template {
        data        = "{{ with nomadVar \"nomad/jobs/hello-ex\" }}{{ .cookie }}{{ end }}"
        destination = "secrets/erlang.cookie"
        perms       = "0400"
      }

      # Clustering lists the instances of cluster_service from Consul with
      # the task's own Consul token, which Nomad makes from the task's
      # Consul workload identity (the client's consul { task_identity })
      # because of this block; without ACLs none is needed.
      consul {}

      # The workload identity token, in secrets/nomad_token, lets the
      # driver read this task's hot-upgrade Variable.
      identity {
        file = true
      }

      # SIGTERM (the driver's default) makes the node run init:stop, so the
      # app drains and logs its shutdown. The BEAM needs about a second for
      # that on its own; give the app room beyond it.
      kill_timeout = "15s"

      # On stop, Nomad first deregisters the services from Consul, waits
      # this long so that load balancers stop sending new requests, and only
      # then signals the node: the Nomad form of a Kubernetes preStop delay.
      shutdown_delay = "5s"

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
