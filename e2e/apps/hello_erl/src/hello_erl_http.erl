%% A minimal HTTP/1.1 server on gen_tcp: one process per connection,
%% `Connection: close` on every response. Enough for health checks and demos.
%%
%% It shuts down gracefully: when the application stops, it closes its
%% listening socket first, so new connections are refused, and then waits
%% for the requests in flight to be answered.
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

%% How long a stop waits for requests in flight; below the supervisor's
%% shutdown time for this child.
-define(DRAIN_MS, 8000).

init(Port) ->
    process_flag(trap_exit, true),
    {ok, L} = gen_tcp:listen(Port, [binary, {active, false}, {reuseaddr, true},
                                    {packet, http_bin}, {backlog, 1024}]),
    Self = self(),
    Acceptor = spawn_link(fun() -> accept(Self, L) end),
    {ok, {L, Acceptor}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.
handle_cast(_Msg, S) -> {noreply, S}.
handle_info({conn, Pid}, S) ->
    erlang:monitor(process, Pid),
    {noreply, S};
handle_info({'EXIT', Acceptor, Reason}, S = {_, Acceptor}) ->
    {stop, Reason, S};
handle_info(_Info, S) -> {noreply, S}.

terminate(_Reason, {L, Acceptor}) ->
    gen_tcp:close(L),
    Deadline = erlang:monotonic_time(millisecond) + ?DRAIN_MS,
    %% The acceptor ends once the socket is closed; after that no new
    %% connection can come.
    receive {'EXIT', Acceptor, _} -> ok after ?DRAIN_MS -> ok end,
    N = drain(0, Deadline),
    io:format("hello_erl stopped accepting, ~b requests in flight answered~n", [N]).

%% drain waits until every connection process this server monitors has
%% ended, or until Deadline, and returns how many it waited for.
drain(N, Deadline) ->
    receive
        {conn, Pid} -> erlang:monitor(process, Pid), drain(N, Deadline)
    after 0 ->
        case erlang:process_info(self(), monitors) of
            {monitors, []} -> N;
            _ ->
                Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
                receive
                    {'DOWN', _, process, _, _} -> drain(N + 1, Deadline)
                after Left -> N
                end
        end
    end.

accept(Owner, L) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() -> receive go -> serve(S) end end),
            case gen_tcp:controlling_process(S, Pid) of
                ok ->
                    Owner ! {conn, Pid},
                    Pid ! go;
                {error, _} ->
                    exit(Pid, kill),
                    gen_tcp:close(S)
            end,
            accept(Owner, L);
        {error, closed} ->
            ok
    end.

serve(S) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, {http_request, _Method, {abs_path, Path}, _}} ->
            drain_headers(S),
            {Code, Body} = route(Path),
            Resp = [<<"HTTP/1.1 ">>, integer_to_binary(Code), reason(Code), <<"\r\n">>,
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

reason(200) -> <<" OK">>;
reason(_) -> <<" Service Unavailable">>.

%% HELLO_UNHEALTHY makes the readiness check fail, for a deploy that must
%% be rolled back.
route(<<"/health">>) ->
    case os:getenv("HELLO_UNHEALTHY") of
        false -> {200, <<"ok\n">>};
        _ -> {503, <<"unhealthy on purpose\n">>}
    end;
route(<<"/slow?ms=", Ms/binary>>) ->
    timer:sleep(binary_to_integer(Ms)),
    {200, <<"slow done\n">>};
route(<<"/op/", Op/binary>>) ->
    ok = hello_erl_oplog:record(Op),
    {200, <<"ok\n">>};
route(<<"/state">>) ->
    {200, io_lib:format("~p~n", [hello_erl_counter:state()])};
%% What a hot upgrade changed: the running applications, and the loaded
%% modules of this one.
route(<<"/apps">>) ->
    {200, [[atom_to_list(A), $\n] || {A, _, _} <- lists:sort(application:which_applications())]};
route(<<"/loaded">>) ->
    {200, [[atom_to_list(M), $\n] || {M, _} <- lists:sort(code:all_loaded()),
                                      lists:prefix("hello_erl", atom_to_list(M))]};
route(_) ->
    {ok, Vsn} = application:get_key(hello_erl, vsn),
    Count = hello_erl_counter:bump(),
    {200, io_lib:format("hello from hello_erl ~s on ~s pid ~s count ~b~n",
                        [Vsn, node(), os:getpid(), Count])}.
