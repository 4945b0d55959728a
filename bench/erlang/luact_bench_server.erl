%% bench/erlang/luact_bench_server: the gen_server that luact_bench's gen_server_call case
%% calls (and gen_server_call_64 calls 64 of, in turn). It answers every call with its argument
%% and counts the calls; `count` returns the count.
-module(luact_bench_server).
-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start_link() -> gen_server:start_link(?MODULE, [], []).

init([]) -> {ok, 0}.

handle_call(count, _From, S) -> {reply, S, S};
handle_call(X, _From, S) -> {reply, X, S + 1}.

handle_cast(stop, S) -> {stop, normal, S};
handle_cast(_, S) -> {noreply, S}.

handle_info(_, S) -> {noreply, S}.
