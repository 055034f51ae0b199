%% A minimal HTTP/1.1 server on gen_tcp: one process per connection,
%% `Connection: close` on every response. Enough for health checks and demos.
-module(hello_erl_http).
-behaviour(gen_server).
-export([start_link/1, port_from_env/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

port_from_env() ->
    Vars = ["NOMAD_PORT_http", "PORT"],
    case [P || V <- Vars, (P = os:getenv(V)) =/= false] of
        [P | _] -> list_to_integer(P);
        [] -> 8080
    end.

start_link(Port) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Port, []).

init(Port) ->
    process_flag(trap_exit, true),
    {ok, L} = gen_tcp:listen(Port, [binary, {active, false}, {reuseaddr, true},
                                    {packet, http_bin}]),
    Self = self(),
    spawn_link(fun() -> accept(Self, L) end),
    {ok, L}.

handle_call(_Req, _From, L) -> {reply, ok, L}.
handle_cast(_Msg, L) -> {noreply, L}.
handle_info(_Info, L) -> {noreply, L}.

terminate(_Reason, L) ->
    gen_tcp:close(L).

accept(Owner, L) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() -> receive go -> serve(S) end end),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! go,
            accept(Owner, L);
        {error, closed} ->
            ok
    end.

serve(S) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, {http_request, _Method, {abs_path, Path}, _}} ->
            drain_headers(S),
            {Code, Body} = route(Path),
            Resp = [<<"HTTP/1.1 ">>, integer_to_binary(Code), <<" OK\r\n">>,
                    <<"Content-Type: text/plain\r\nConnection: close\r\n">>,
                    <<"Content-Length: ">>, integer_to_binary(iolist_size(Body)),
                    <<"\r\n\r\n">>, Body],
            gen_tcp:send(S, Resp);
        _ ->
            ok
    end,
    gen_tcp:close(S).

drain_headers(S) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, {http_header, _, _, _, _}} -> drain_headers(S);
        _ -> ok
    end.

route(<<"/health">>) ->
    {200, <<"ok\n">>};
route(<<"/state">>) ->
    {200, io_lib:format("~p~n", [hello_erl_counter:state()])};
route(_) ->
    {ok, Vsn} = application:get_key(hello_erl, vsn),
    Count = hello_erl_counter:bump(),
    {200, io_lib:format("hello from hello_erl ~s on ~s pid ~s count ~b~n",
                        [Vsn, node(), os:getpid(), Count])}.
