defmodule HelloEx.HTTP do
  @moduledoc """
  A minimal HTTP/1.1 server on :gen_tcp: one process per connection and
  `Connection: close` on every response. Enough for health checks and demos.

  `GET /slow?ms=N` answers after N milliseconds, to test that requests in
  flight when the node stops still complete: `drain/1` (called from the
  application's prep_stop) stops accepting and waits for them.
  """
  use GenServer

  def start_link(port), do: GenServer.start_link(__MODULE__, port, name: __MODULE__)

  @doc "Stops accepting connections and waits for the open ones to finish."
  def drain(timeout), do: GenServer.call(__MODULE__, :drain, timeout + 1000)

  @impl true
  def init(port) do
    Process.flag(:trap_exit, true)

    {:ok, listen} =
      :gen_tcp.listen(port, [:binary, active: false, reuseaddr: true, packet: :http_bin])

    server = self()
    acceptor = spawn_link(fn -> accept(listen, server) end)
    {:ok, %{listen: listen, acceptor: acceptor, conns: %{}, waiting: nil}}
  end

  @impl true
  def handle_call({:serve, pid}, _from, state) do
    ref = Process.monitor(pid)
    {:reply, :ok, %{state | conns: Map.put(state.conns, ref, pid)}}
  end

  def handle_call(:drain, from, state) do
    :gen_tcp.close(state.listen)
    IO.puts("hello_ex draining #{map_size(state.conns)} open connections")
    state = %{state | waiting: from}
    if state.conns == %{}, do: {:reply, :ok, state}, else: {:noreply, state}
  end

  @impl true
  def handle_info({:DOWN, ref, :process, _pid, _}, state) do
    conns = Map.delete(state.conns, ref)
    if conns == %{} and state.waiting, do: GenServer.reply(state.waiting, :ok)
    {:noreply, %{state | conns: conns}}
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state), do: :gen_tcp.close(state.listen)

  defp accept(listen, server) do
    case :gen_tcp.accept(listen) do
      {:ok, socket} ->
        pid = spawn(fn -> receive do: (:go -> serve(socket)) end)
        :ok = :gen_tcp.controlling_process(socket, pid)
        GenServer.call(server, {:serve, pid})
        send(pid, :go)
        accept(listen, server)

      {:error, _} ->
        :ok
    end
  end

  defp serve(socket) do
    with {:ok, {:http_request, _method, {:abs_path, path}, _}} <- :gen_tcp.recv(socket, 0, 5000) do
      drain_headers(socket)
      body = route(URI.parse(path))

      :gen_tcp.send(socket, [
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n",
        "Content-Length: #{IO.iodata_length(body)}\r\n\r\n",
        body
      ])
    end

    :gen_tcp.close(socket)
  end

  defp drain_headers(socket) do
    case :gen_tcp.recv(socket, 0, 5000) do
      {:ok, {:http_header, _, _, _, _}} -> drain_headers(socket)
      _ -> :ok
    end
  end

  defp route(%URI{path: "/health"}), do: "ok\n"

  defp route(%URI{path: "/slow", query: query}) do
    ms = String.to_integer(URI.decode_query(query || "")["ms"] || "1000")
    Process.sleep(ms)
    "slow done after #{ms} ms\n"
  end

  defp route(%URI{path: "/state"}), do: inspect(HelloEx.Counter.state()) <> "\n"

  # What a hot upgrade changed: the running applications, and the loaded
  # modules of this one.
  defp route(%URI{path: "/apps"}) do
    for {app, _, _} <- Enum.sort(Application.started_applications()), do: "#{app}\n"
  end

  defp route(%URI{path: "/registered"}) do
    for name <- Enum.sort(Process.registered()),
        String.starts_with?(Atom.to_string(name), "Elixir.HelloEx"),
        do: "#{inspect(name)}\n"
  end

  defp route(%URI{path: "/loaded"}) do
    for {mod, _} <- Enum.sort(:code.all_loaded()),
        String.starts_with?(Atom.to_string(mod), "Elixir.HelloEx"),
        do: "#{inspect(mod)}\n"
  end

  defp route(_) do
    greeting = Application.get_env(:hello_ex, :greeting, "(no greeting)")

    "#{greeting} from hello_ex #{HelloEx.Application.vsn()} on #{node()} pid #{System.pid()}" <>
      " count #{HelloEx.Counter.bump()}\n"
  end
end
