-module(hello_erl_sup).
-behaviour(supervisor).
-export([start_link/1, init/1]).

start_link(Port) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, Port).

init(Port) ->
    %% Children stop in the reverse order: the HTTP server drains its
    %% requests first, then the operation log flushes what they recorded.
    Oplog = #{id => hello_erl_oplog,
              start => {hello_erl_oplog, start_link, []},
              shutdown => 5000},
    Http = #{id => hello_erl_http,
             start => {hello_erl_http, start_link, [Port]},
             shutdown => 10000},
    Counter = #{id => hello_erl_counter,
                start => {hello_erl_counter, start_link, []}},
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Oplog, Counter, Http]}}.
