%% A batched operation log, as apps keep for analytics or audit: requests
%% record operations in memory, and this process appends them to a file in
%% batches, every ?FLUSH_MS or once ?BATCH are waiting, and a last time when
%% the application stops. The supervisor stops the HTTP server first, after
%% it has finished its in-flight requests, so that no recorded operation is
%% lost across a deploy.
%%
%% HELLO_OPLOG names a directory; each node appends to NODE-OSPID.log in
%% it. Without it, operations are counted and dropped.
-module(hello_erl_oplog).
-behaviour(gen_server).
-export([start_link/0, record/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(FLUSH_MS, 1000).
-define(BATCH, 200).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% record(Op) returns once Op is held by the log, so that a request is
%% answered only after its operation is safe from a graceful stop.
record(Op) -> gen_server:call(?MODULE, {record, Op}).

init([]) ->
    %% Trapping exits makes the supervisor's shutdown run terminate/2.
    process_flag(trap_exit, true),
    File = case os:getenv("HELLO_OPLOG") of
               false -> undefined;
               Dir -> filename:join(Dir, io_lib:format("~s-~s.log", [node(), os:getpid()]))
           end,
    erlang:send_after(?FLUSH_MS, self(), flush),
    {ok, #{file => File, batch => [], size => 0}}.

handle_call({record, Op}, _From, S = #{batch := B, size := N}) when N + 1 >= ?BATCH ->
    {reply, ok, flush(S#{batch := [Op | B], size := N + 1})};
handle_call({record, Op}, _From, S = #{batch := B, size := N}) ->
    {reply, ok, S#{batch := [Op | B], size := N + 1}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(flush, S) ->
    erlang:send_after(?FLUSH_MS, self(), flush),
    {noreply, flush(S)};
handle_info(_Info, S) ->
    {noreply, S}.

terminate(_Reason, S = #{size := N}) ->
    flush(S),
    io:format("hello_erl flushed ~b operations on shutdown~n", [N]).

flush(S = #{size := 0}) ->
    S;
flush(S = #{file := undefined}) ->
    S#{batch := [], size := 0};
flush(S = #{file := File, batch := B}) ->
    ok = file:write_file(File, [[Op, $\n] || Op <- lists:reverse(B)], [append]),
    S#{batch := [], size := 0}.
