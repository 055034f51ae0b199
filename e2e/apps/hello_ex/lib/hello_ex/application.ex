defmodule HelloEx.Application do
  @moduledoc "Example OTP application: a small HTTP service built from OTP alone."
  use Application

  @impl true
  def start(_type, _args) do
    port = Application.fetch_env!(:hello_ex, :port)
    children = [HelloEx.Counter, {HelloEx.HTTP, port}] ++ since_0_3_0()
    {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one, name: HelloEx.Supervisor)
    IO.puts("hello_ex #{vsn()} booted on node #{node()}, http port #{port}")
    {:ok, sup}
  end

  @impl true
  def prep_stop(state) do
    IO.puts("hello_ex shutting down gracefully")
    # Finish the requests in flight before the supervision tree stops.
    HelloEx.HTTP.drain(10_000)
    IO.puts("hello_ex drained")
    state
  end

  @impl true
  def stop(_state) do
    IO.puts("hello_ex stopped")
    :ok
  end

  # 0.3.0 adds a child, which its hot upgrade does not start.
  if Version.compare(Mix.Project.config()[:version], "0.3.0") == :lt do
    defp since_0_3_0, do: []
  else
    defp since_0_3_0, do: [HelloEx.Ticker]
  end

  def vsn, do: Application.spec(:hello_ex, :vsn) |> to_string()
end
