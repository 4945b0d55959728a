%% bench/erlang/luact_bench: the Erlang/OTP peers of the luact benchmarks. Each case prints one
%% JSON line shaped like luact's ({"case":..,"impl":"erlang","n":..,"seconds":..,"rate":..}).
%% Run: erl -noshell +S 2 -pa bench/out -run luact_bench main CASE [N]
%%   pingpong         raw send/receive round trips between two processes
%%   gen_server_call  gen_server:call round trips to luact_bench_server
%%   gen_server_call_64  one caller, gen_server:call to 64 luact_bench_servers in turn (each
%%                    counts its calls; the counts are checked at the end): the shape of luact's
%%                    call_same_thread (64 actors called in turn, nothing to hoist)
%%   pingpong_64      64 caller processes share one echo process, each doing N/64 round trips:
%%                    the shape of luact's call_cross_thread_64 (64 callers, one actor)
%%   send_oneway      one-way sends; the receiver counts them and acks once at the end
%%   spawn            spawn rate of idle processes and memory per idle process
%%   ring             1000 processes in a ring pass a token 1 000 000 hops
%%   skynet           the skynet tree: N leaves (1 000 000: 1 111 111 processes) spawned with a
%%                    10-way fan-out; each process sums its children's answers (bench/skynet.lua)
%%   dist_pingpong    from node a to the echo process of node b (started with `dist_server`):
%%                    1 caller (rate, p50/p99 µs), then 64 concurrent callers (rate); with
%%                    `tls` after the peer's name, as dist_tls_pingpong_* (TLS distribution)
%%   dist_server      node b: registers the echo process and halts when node a goes away
%% Every loop is bounded; a watchdog halts the node if a case hangs.
-module(luact_bench).
-export([main/1]).

-define(WATCHDOG_MS, 120000).
-define(DIST_CALLERS, 64).
-define(RING_SIZE, 1000).

main([Case | Rest]) ->
    Watchdog = spawn(fun() ->
                             receive after ?WATCHDOG_MS ->
                                     io:format(standard_error, "luact_bench: ~s timed out~n", [Case]),
                                     erlang:halt(3)
                             end
                     end),
    N = case Rest of
            [S | _] -> list_to_integer(S);
            [] -> default_n(Case)
        end,
    Result = (catch run(Case, N, tl_or_empty(Rest))),
    case Result of
        ok -> ok;
        Other -> io:format(standard_error, "luact_bench: ~s failed: ~p~n", [Case, Other])
    end,
    exit(Watchdog, kill),
    erlang:halt(case Result of ok -> 0; _ -> 1 end).

tl_or_empty([]) -> [];
tl_or_empty([_ | T]) -> T.

default_n("pingpong") -> 3000000;
default_n("gen_server_call") -> 1500000;
default_n("gen_server_call_64") -> 1500000;
default_n("pingpong_64") -> 3000000;
default_n("send_oneway") -> 10000000;
default_n("spawn") -> 200000;
default_n("ring") -> 1000000;
default_n("skynet") -> 1000000;
default_n("dist_pingpong") -> 20000;
default_n("dist_server") -> 0.

run("pingpong", N, _) -> pingpong(N);
run("gen_server_call", N, _) -> gen_server_call(N);
run("gen_server_call_64", N, _) -> gen_server_call_64(N);
run("pingpong_64", N, _) -> pingpong_64(N);
run("send_oneway", N, _) -> send_oneway(N);
run("spawn", N, _) -> spawn_idle(N);
run("ring", N, _) -> ring(?RING_SIZE, N);
run("skynet", N, _) -> skynet(N);
run("dist_pingpong", N, [Peer | Rest]) ->
    %% "tls" after the peer: the nodes run the TLS distribution (-proto_dist inet_tls), and the
    %% cases are named dist_tls_pingpong_*
    Name = case Rest of ["tls" | _] -> "dist_tls_pingpong"; _ -> "dist_pingpong" end,
    dist_pingpong(N, list_to_atom(Peer), Name);
run("dist_server", _, _) -> dist_server().

%% --- output -------------------------------------------------------------------------------

now_ns() -> erlang:monotonic_time(nanosecond).

emit(Case, N, Ns, Extra) ->
    Secs = Ns / 1.0e9,
    Fields = [{"case", {str, Case}}, {"impl", {str, "erlang"}}, {"n", N},
              {"seconds", Secs}, {"rate", N / Secs}] ++ Extra,
    io:format("{~s}~n", [lists:join(",", [field(K, V) || {K, V} <- Fields])]).

field(K, {str, S}) -> io_lib:format("\"~s\":\"~s\"", [K, S]);
field(K, V) when is_integer(V) -> io_lib:format("\"~s\":~b", [K, V]);
field(K, V) when is_float(V) -> io_lib:format("\"~s\":~.3f", [K, V]).

%% Runs F in a fresh process and waits (bounded) for its result, so the measuring process
%% starts with a small heap and an empty mailbox.
in_process(F) ->
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), F()} end),
    receive
        {Pid, R} -> erlang:demonitor(Ref, [flush]), R;
        {'DOWN', Ref, process, Pid, Why} -> exit({bench_process_died, Why})
    after ?WATCHDOG_MS -> exit(timeout)
    end.

%% --- same node ----------------------------------------------------------------------------

pingpong(N) ->
    Echo = spawn_link(fun echo/0),
    Ns = in_process(fun() -> pingpong_loop(Echo, 1000), T = now_ns(), pingpong_loop(Echo, N), now_ns() - T end),
    Echo ! stop,
    emit("pingpong", N, Ns, []).

echo() ->
    receive
        {From, X} -> From ! X, echo();
        stop -> ok
    end.

pingpong_loop(_, 0) -> ok;
pingpong_loop(Echo, K) ->
    Echo ! {self(), K},
    receive K -> pingpong_loop(Echo, K - 1) end.

gen_server_call(N) ->
    {ok, S} = luact_bench_server:start_link(),
    Ns = in_process(fun() -> call_loop(S, 1000), T = now_ns(), call_loop(S, N), now_ns() - T end),
    gen_server:cast(S, stop),
    emit("gen_server_call", N, Ns, []).

call_loop(_, 0) -> ok;
call_loop(S, K) -> K = gen_server:call(S, K), call_loop(S, K - 1).

-define(SERVERS, 64).

%% One caller calls 64 servers in turn (a tuple, indexed by K rem 64); every server counts its
%% calls, and the counts must add up to the calls made (warm-up included).
gen_server_call_64(N) ->
    Ss = list_to_tuple([begin {ok, S} = luact_bench_server:start_link(), S end
                        || _ <- lists:seq(1, ?SERVERS)]),
    Ns = in_process(fun() -> rr_loop(Ss, 1000), T = now_ns(), rr_loop(Ss, N), now_ns() - T end),
    Calls = lists:sum([gen_server:call(S, count) || S <- tuple_to_list(Ss)]),
    Calls = N + 1000,
    [gen_server:cast(S, stop) || S <- tuple_to_list(Ss)],
    emit("gen_server_call_64", N, Ns, [{"actors", ?SERVERS}]).

rr_loop(_, 0) -> ok;
rr_loop(Ss, K) ->
    K = gen_server:call(element(K rem ?SERVERS + 1, Ss), K),
    rr_loop(Ss, K - 1).

%% 64 callers share one echo process; the time runs until the last caller is done.
pingpong_64(N) ->
    Echo = spawn_link(fun echo/0),
    Per = max(1, N div ?SERVERS),
    Ns = in_process(fun() ->
                            pingpong_loop(Echo, 1000),
                            Self = self(),
                            T = now_ns(),
                            Ps = [spawn_link(fun() -> pingpong_loop(Echo, Per), Self ! {self(), done} end)
                                  || _ <- lists:seq(1, ?SERVERS)],
                            [receive {P, done} -> ok after ?WATCHDOG_MS -> exit(pingpong_64_timeout) end
                             || P <- Ps],
                            now_ns() - T
                    end),
    Echo ! stop,
    emit("pingpong_64", Per * ?SERVERS, Ns, [{"callers", ?SERVERS}]).

send_oneway(N) ->
    Ns = in_process(fun() ->
                            Self = self(),
                            R = spawn_link(fun() -> count(Self, N) end),
                            T = now_ns(),
                            send_loop(R, N),
                            receive {R, counted} -> now_ns() - T
                            after ?WATCHDOG_MS -> exit(send_oneway_timeout)
                            end
                    end),
    emit("send_oneway", N, Ns, []).

send_loop(_, 0) -> ok;
send_loop(R, K) -> R ! K, send_loop(R, K - 1).

count(From, 0) -> From ! {self(), counted};
count(From, K) -> receive _ -> count(From, K - 1) end.

%% Spawns N processes that wait in receive; the rate is N over the time to spawn them all and
%% hear that the last one runs; the memory is erlang:memory(processes) after minus before.
spawn_idle(N) ->
    {Ns, Bytes, One, Pids} =
        in_process(fun() ->
                           erlang:garbage_collect(),
                           M0 = erlang:memory(processes),
                           T = now_ns(),
                           Ps = spawn_n(N, []),
                           Self = self(),
                           Last = spawn(fun() -> Self ! {self(), up}, idle() end),
                           receive {Last, up} -> ok end,
                           Dt = now_ns() - T,
                           M1 = erlang:memory(processes),
                           {memory, PM} = process_info(hd(Ps), memory),
                           {Dt, (M1 - M0) / (N + 1), PM, [Last | Ps]}
                   end),
    [exit(P, kill) || P <- Pids],
    emit("spawn", N, Ns, [{"bytes_per_actor", Bytes}, {"process_info_memory", One}]).

idle() -> receive stop -> ok end.

spawn_n(0, Acc) -> Acc;
spawn_n(K, Acc) -> spawn_n(K - 1, [spawn(fun idle/0) | Acc]).

%% A ring of Size processes; the token carries the hops left and the last hop tells Main.
ring(Size, Hops) ->
    Ns = in_process(fun() ->
                            Main = self(),
                            First = build_ring(Size, Main),
                            T = now_ns(),
                            First ! {token, Hops},
                            receive ring_done -> now_ns() - T
                            after ?WATCHDOG_MS -> exit(ring_timeout)
                            end
                    end),
    emit("ring", Hops, Ns, [{"actors", Size}]).

%% Each process learns its successor (the first closes the ring), then forwards the token.
build_ring(Size, Main) ->
    First = spawn(fun() -> receive {next, Nx} -> ring_node(Nx, Main) end end),
    Last = lists:foldl(fun(_, Prev) ->
                               P = spawn(fun() -> receive {next, Nx} -> ring_node(Nx, Main) end end),
                               Prev ! {next, P},
                               P
                       end, First, lists:seq(2, Size)),
    Last ! {next, First},
    First.

ring_node(Next, Main) ->
    receive
        {token, 0} -> Main ! ring_done, Next ! stop, ring_node_stop();
        {token, K} -> Next ! {token, K - 1}, ring_node(Next, Main);
        stop -> Next ! stop
    end.

%% After the token ends, one stop goes round and every process exits once.
ring_node_stop() -> receive stop -> ok after 1000 -> ok end.

%% The skynet tree of N leaves: every process spawns 10 children, receives their 10 numbers
%% and sends the sum to its parent; a leaf sends its number. The sum is checked.
skynet(N) ->
    {Ns, Sum} = in_process(fun() ->
                                   T = now_ns(),
                                   Self = self(),
                                   spawn(fun() -> skynet_node(Self, 0, N) end),
                                   receive {skynet, S} -> {now_ns() - T, S}
                                   after ?WATCHDOG_MS -> exit(skynet_timeout)
                                   end
                           end),
    Sum = N * (N - 1) div 2,
    emit("skynet", skynet_processes(N), Ns, [{"leaves", N}]).

skynet_node(Parent, Num, 1) -> Parent ! {skynet, Num};
skynet_node(Parent, Num, Size) ->
    Per = Size div 10,
    Self = self(),
    [spawn(fun() -> skynet_node(Self, Num + I * Per, Per) end) || I <- lists:seq(0, 9)],
    Parent ! {skynet, skynet_collect(10, 0)}.

skynet_collect(0, Acc) -> Acc;
skynet_collect(K, Acc) -> receive {skynet, V} -> skynet_collect(K - 1, Acc + V) end.

skynet_processes(1) -> 1;
skynet_processes(N) -> N + skynet_processes(N div 10).

%% --- two nodes ----------------------------------------------------------------------------

dist_server() ->
    true = register(luact_echo, spawn(fun dist_echo/0)),
    ok = net_kernel:monitor_nodes(true),
    receive {nodedown, _} -> ok
    after ?WATCHDOG_MS - 5000 -> ok
    end.

dist_echo() ->
    receive
        {From, X} -> From ! X, dist_echo()
    end.

connect(Peer, 0) -> exit({cannot_connect, Peer});
connect(Peer, Tries) ->
    case net_kernel:connect_node(Peer) of
        true ->
            case rpc:call(Peer, erlang, whereis, [luact_echo]) of
                P when is_pid(P) -> ok;
                _ -> timer:sleep(100), connect(Peer, Tries - 1)
            end;
        _ -> timer:sleep(100), connect(Peer, Tries - 1)
    end.

dist_pingpong(N, Peer, Name) ->
    connect(Peer, 100),
    Echo = {luact_echo, Peer},
    %% 1 caller: latency of every round trip.
    {Ns1, Lat} = in_process(fun() ->
                                    _ = timed_calls(Echo, 500, []),
                                    T = now_ns(),
                                    L = timed_calls(Echo, N, []),
                                    {now_ns() - T, L}
                            end),
    Sorted = lists:sort(Lat),
    emit(Name ++ "_1", N, Ns1,
         [{"p50_us", percentile(Sorted, 0.50) / 1000}, {"p99_us", percentile(Sorted, 0.99) / 1000}]),
    %% 64 callers, each doing Per round trips at once.
    Per = max(1, (N * 4) div ?DIST_CALLERS),
    Ns64 = in_process(fun() ->
                              Self = self(),
                              T = now_ns(),
                              Ps = [spawn_link(fun() -> plain_calls(Echo, Per), Self ! {self(), done} end)
                                    || _ <- lists:seq(1, ?DIST_CALLERS)],
                              [receive {P, done} -> ok after ?WATCHDOG_MS -> exit(dist64_timeout) end
                               || P <- Ps],
                              now_ns() - T
                      end),
    emit(Name ++ "_64", Per * ?DIST_CALLERS, Ns64, [{"callers", ?DIST_CALLERS}]).

timed_calls(_, 0, Acc) -> Acc;
timed_calls(Echo, K, Acc) ->
    T = now_ns(),
    Echo ! {self(), K},
    receive K -> timed_calls(Echo, K - 1, [now_ns() - T | Acc])
    after 5000 -> exit(dist_reply_timeout)
    end.

plain_calls(_, 0) -> ok;
plain_calls(Echo, K) ->
    Echo ! {self(), K},
    receive K -> plain_calls(Echo, K - 1)
    after 5000 -> exit(dist_reply_timeout)
    end.

percentile(Sorted, P) ->
    lists:nth(round((length(Sorted) - 1) * P) + 1, Sorted).
