%% Stands in for the Erlang that `gleam build` emits: no Gleam compiler can
%% be installed here, so this package is written in Erlang and packed in the
%% `gleam export erlang-shipment` layout by ../build.sh.
%%
%% A shipment has no OTP application for init:stop to shut down in order,
%% so the server takes SIGTERM itself: it stops accepting, answers the
%% requests in flight, and only then stops the VM.
-module(hello_gleam).
-export([main/0]).

%% How long a stop waits for requests in flight.
-define(DRAIN_MS, 8000).

main() ->
    Port = list_to_integer(os:getenv("NOMAD_PORT_http", "8000")),
    {ok, L} = gen_tcp:listen(Port, [binary, {active, false}, {reuseaddr, true}, {backlog, 1024}]),
    ok = hello_gleam_sigterm:forward_to(self()),
    process_flag(trap_exit, true),
    Self = self(),
    Acceptor = spawn_link(fun() -> accept(Self, L) end),
    io:format("hello_gleam booted, http port ~b~n", [Port]),
    serve(L, Acceptor).

%% serve keeps count of the requests in flight until SIGTERM comes.
serve(L, Acceptor) ->
    receive
        {conn, Pid} ->
            erlang:monitor(process, Pid),
            serve(L, Acceptor);
        sigterm ->
            gen_tcp:close(L),
            Deadline = erlang:monotonic_time(millisecond) + ?DRAIN_MS,
            %% Once the acceptor has ended, no new connection can come.
            receive {'EXIT', Acceptor, _} -> ok after ?DRAIN_MS -> ok end,
            drain(Deadline),
            io:format("hello_gleam stopped accepting and answered its requests in flight~n"),
            init:stop();
        {'EXIT', Acceptor, Reason} ->
            exit(Reason);
        _ ->
            serve(L, Acceptor)
    end.

drain(Deadline) ->
    receive
        {conn, Pid} -> erlang:monitor(process, Pid), drain(Deadline)
    after 0 ->
        case erlang:process_info(self(), monitors) of
            {monitors, []} -> ok;
            _ ->
                Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
                receive
                    {'DOWN', _, process, _, _} -> drain(Deadline)
                after Left -> ok
                end
        end
    end.

accept(Owner, L) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() -> receive go -> reply(S) end end),
            ok = gen_tcp:controlling_process(S, Pid),
            Owner ! {conn, Pid},
            Pid ! go,
            accept(Owner, L);
        {error, closed} ->
            ok
    end.

reply(S) ->
    Body = case gen_tcp:recv(S, 0, 5000) of
               {ok, <<"GET /slow?ms=", Rest/binary>>} ->
                   {Ms, _} = string:to_integer(Rest),
                   timer:sleep(Ms),
                   <<"slow done\n">>;
               _ ->
                   <<"hello from hello_gleam\n">>
           end,
    gen_tcp:send(S, [<<"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ">>,
                     integer_to_binary(byte_size(Body)), <<"\r\n\r\n">>, Body]),
    gen_tcp:close(S).
