%% Stands in for the Erlang that `gleam build` emits: no Gleam compiler can
%% be installed here, so this package is written in Erlang and packed in the
%% `gleam export erlang-shipment` layout by ../build.sh.
-module(hello_gleam).
-export([main/0]).

main() ->
    Port = list_to_integer(os:getenv("NOMAD_PORT_http", "8000")),
    {ok, L} = gen_tcp:listen(Port, [binary, {active, false}, {reuseaddr, true}]),
    io:format("hello_gleam booted, http port ~b~n", [Port]),
    accept(L).

accept(L) ->
    {ok, S} = gen_tcp:accept(L),
    spawn(fun() -> reply(S) end),
    accept(L).

reply(S) ->
    _ = gen_tcp:recv(S, 0, 5000),
    Body = <<"hello from hello_gleam\n">>,
    gen_tcp:send(S, [<<"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ">>,
                     integer_to_binary(byte_size(Body)), <<"\r\n\r\n">>, Body]),
    gen_tcp:close(S).
