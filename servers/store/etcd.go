package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
)

// Etcd keeps the systems of a cluster in etcd, one key per system under
// <prefix>/systems/, and mirrors them in memory through a watch: Exists
// never touches etcd, so API calls and connects keep working while etcd is
// away. Register is a transaction that creates the key only if it does not
// exist, so of two nodes registering one id at once exactly one wins.
type Etcd struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	log     *zap.Logger

	mu  sync.RWMutex
	ids map[string]struct{}

	misses chan struct{} // slots for etcd reads of ids missing from ids

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// etcdValue is the JSON value of a system's key.
type etcdValue struct {
	SystemID     string    `json:"systemId"`
	RegisteredAt time.Time `json:"registeredAt"`
}

// OpenEtcd loads the systems (ctx bounds that first read: it fails when etcd
// does not answer) and starts the watch that keeps the cache current.
// timeout bounds each later etcd request (Register). Close stops the watch.
func OpenEtcd(ctx context.Context, cli *clientv3.Client, keyPrefix string, timeout time.Duration, log *zap.Logger) (*Etcd, error) {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Etcd{cli: cli, prefix: strings.TrimRight(keyPrefix, "/") + "/systems/", timeout: timeout, log: log,
		ids: map[string]struct{}{}, done: make(chan struct{}), misses: make(chan struct{}, maxMissReads)}
	rev, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load systems from etcd: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.watch(rev)
	return s, nil
}

// load replaces the cache with etcd's systems and returns the revision read.
func (s *Etcd) load(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	ids := make(map[string]struct{}, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ids[strings.TrimPrefix(string(kv.Key), s.prefix)] = struct{}{}
	}
	s.mu.Lock()
	s.ids = ids
	s.mu.Unlock()
	return resp.Header.Revision, nil
}

// watch applies changes from rev+1 on; after a compaction or a failed watch
// it loads everything again. The cache is kept while etcd is unreachable.
func (s *Etcd) watch(rev int64) {
	defer close(s.done)
	f := etcdwatch.Follower{
		Client: s.cli, Prefix: s.prefix, Timeout: s.timeout, Log: s.log,
		Load: s.load,
		Apply: func(wr clientv3.WatchResponse) {
			s.mu.Lock()
			for _, ev := range wr.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), s.prefix)
				if ev.Type == mvccpb.DELETE {
					delete(s.ids, id)
				} else {
					s.ids[id] = struct{}{}
				}
			}
			s.mu.Unlock()
		},
	}
	f.Run(s.ctx, rev)
}

// Register implements Systems.
func (s *Etcd) Register(ctx context.Context, id string) error {
	val, err := json.Marshal(etcdValue{SystemID: id, RegisteredAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	key := s.prefix + id
	// Detached from the caller's cancellation: the caller may be an HTTP
	// handler's context that is reused once the handler returns, and the
	// deadline's timer must not touch it then. s.timeout bounds the call.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		s.log.Warn("register system: etcd does not answer", zap.String("systemId", id), zap.Error(err))
		return &define.Error{Code: define.CodeUnavailable,
			Msg: "cluster unavailable: etcd does not answer, so the system cannot be registered now; try again later"}
	}
	// Cache it now (the watch will confirm) so this node accepts the
	// system's connects and calls right after register returns.
	s.mu.Lock()
	s.ids[id] = struct{}{}
	s.mu.Unlock()
	if !resp.Succeeded {
		return define.ErrSystemExists
	}
	return nil
}

// missTimeout bounds the etcd read of a system missing from the cache.
const missTimeout = 500 * time.Millisecond

// maxMissReads bounds the concurrent etcd reads of missing systems, so a
// flood of calls for unknown ids costs etcd little.
const maxMissReads = 8

// Exists implements Systems. It answers from memory; an id missing there
// is read from etcd once (bounded by missTimeout), so a system registered
// on another node a moment ago is known here before its watch event
// arrives. While etcd does not answer, the cache's answer stands.
func (s *Etcd) Exists(id string) bool {
	s.mu.RLock()
	_, ok := s.ids[id]
	s.mu.RUnlock()
	if ok || id == "" {
		return ok
	}
	select {
	case s.misses <- struct{}{}:
		defer func() { <-s.misses }()
	default:
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, missTimeout))
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+id, clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) == 0 {
		return false
	}
	s.mu.Lock()
	s.ids[id] = struct{}{}
	s.mu.Unlock()
	return true
}

// List implements Systems.
func (s *Etcd) List() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedKeys(s.ids)
}

// Close stops the watch. It does not close the etcd client.
func (s *Etcd) Close() {
	s.cancel()
	<-s.done
}
