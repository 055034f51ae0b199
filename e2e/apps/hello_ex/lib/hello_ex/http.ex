defmodule HelloEx.HTTP do
  @moduledoc """
  A minimal HTTP/1.1 server on :gen_tcp: one process per connection and
  `Connection: close` on every response. Enough for health checks and demos.
  """
  use GenServer

  def start_link(port), do: GenServer.start_link(__MODULE__, port, name: __MODULE__)

  @impl true
  def init(port) do
    Process.flag(:trap_exit, true)

    {:ok, listen} =
      :gen_tcp.listen(port, [:binary, active: false, reuseaddr: true, packet: :http_bin])

    spawn_link(fn -> accept(listen) end)
    {:ok, listen}
  end

  @impl true
  def handle_info(_msg, listen), do: {:noreply, listen}

  @impl true
  def terminate(_reason, listen), do: :gen_tcp.close(listen)

  defp accept(listen) do
    case :gen_tcp.accept(listen) do
      {:ok, socket} ->
        pid = spawn(fn -> receive do: (:go -> serve(socket)) end)
        :ok = :gen_tcp.controlling_process(socket, pid)
        send(pid, :go)
        accept(listen)

      {:error, :closed} ->
        :ok
    end
  end

  defp serve(socket) do
    with {:ok, {:http_request, _method, {:abs_path, path}, _}} <- :gen_tcp.recv(socket, 0, 5000) do
      drain_headers(socket)
      body = route(path)

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

  defp route("/health"), do: "ok\n"
  defp route(_),
    do: "hello from hello_ex #{HelloEx.Application.vsn()} on #{node()} pid #{System.pid()}\n"
end
