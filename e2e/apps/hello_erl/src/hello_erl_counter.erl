%% A counter whose state changes shape between releases, to show that a hot
%% upgrade keeps and migrates in-memory state.
%%   0.1.0 keeps {count, N}.
%%   0.2.0 and later keep #{count => N, upgraded => Bool}; they are
%%   compiled with -DV2 (see ../build.sh).
%% 0.1.0 has the module hello_erl_legacy (v1/), which 0.2.0 drops; 0.2.0
%% adds hello_erl_shape (v2/). No appup is written by hand: beamctl relup
%% derives them from the compiled modules.
-module(hello_erl_counter).
-behaviour(gen_server).
-export([start_link/0, bump/0, state/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% bump() adds one and returns the new count.
bump() -> gen_server:call(?MODULE, bump).

%% state() returns the raw state, to check its shape.
state() -> gen_server:call(?MODULE, state).

handle_cast(_Msg, S) -> {noreply, S}.

-ifndef(V2).
init([]) -> {ok, hello_erl_legacy:initial()}.

handle_call(bump, _From, {count, N}) -> {reply, N + 1, {count, N + 1}};
handle_call(state, _From, S) -> {reply, S, S}.

code_change(_Vsn, S, _Extra) -> {ok, S}.
-else.
init([]) -> {ok, hello_erl_shape:new(0, false)}.

handle_call(bump, _From, S = #{count := N}) -> {reply, N + 1, S#{count := N + 1}};
handle_call(state, _From, S) -> {reply, S, S}.

%% A hot downgrade runs this, the new code, before it loads the old.
code_change({down, _Vsn}, #{count := N}, _Extra) ->
    {ok, {count, N}};
code_change(_Vsn, {count, N}, _Extra) ->
    case refused() of
        true -> error(upgrade_refused_for_this_allocation);
        false -> {ok, hello_erl_shape:new(N, true)}
    end;
code_change(_Vsn, S, _Extra) -> {ok, S}.

%% Tests make one allocation's upgrade fail by its Nomad allocation index.
refused() ->
    Index = os:getenv("HELLO_FAIL_UPGRADE_INDEX"),
    Index =/= false andalso Index =:= os:getenv("NOMAD_ALLOC_INDEX").
-endif.
