package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisMode is how groupsync reaches Redis.
type RedisMode string

// The Redis deployments RedisStore runs on.
const (
	// RedisSingle is one Redis server (or a primary whose replicas are not
	// used for failover): redis://[user:password@]host:port[/db].
	RedisSingle RedisMode = "single"
	// RedisSentinel is a primary and replicas watched by Sentinels, which
	// promote a replica when the primary dies:
	// redis+sentinel://[user:password@]sentinel1:port,sentinel2:port,.../master-name[/db].
	RedisSentinel RedisMode = "sentinel"
	// RedisCluster is a Redis Cluster: redis+cluster://[user:password@]node1:port,node2:port,...
	// or a redis:// URL with several comma-separated nodes.
	RedisCluster RedisMode = "cluster"
)

// RedisConfig is a parsed GROUPSYNC_REDIS_URL. It holds the password: never
// print it (String redacts it).
type RedisConfig struct {
	// Mode says which of the three deployments the URL names.
	Mode RedisMode
	// Addrs are the Redis server (single), the Sentinels (sentinel) or the
	// cluster nodes to start from (cluster), as host:port.
	Addrs []string
	// MasterName is the name the Sentinels monitor (sentinel only).
	MasterName string
	// DB is the database number (not with cluster).
	DB int
	// Username and Password authenticate to Redis. With Sentinel they are
	// also sent to the Sentinels unless SentinelPassword is set.
	Username, Password string
	// SentinelPassword authenticates to the Sentinels when it differs from
	// Password (query parameter sentinel_password).
	SentinelPassword string
	// TLS is set by the rediss schemes.
	TLS bool
}

// String describes c without its passwords.
func (c RedisConfig) String() string {
	s := string(c.Mode) + " " + strings.Join(c.Addrs, ",")
	if c.MasterName != "" {
		s += " master " + c.MasterName
	}
	return s
}

// ParseRedisURL parses GROUPSYNC_REDIS_URL: a redis:// or rediss:// URL of
// one server, a redis+sentinel:// (rediss+sentinel://) URL listing Sentinels
// and naming the master, or a redis+cluster:// (rediss+cluster://) URL, or a
// redis:// URL with several comma-separated hosts, listing cluster nodes.
// Errors never quote the password.
func ParseRedisURL(raw string) (RedisConfig, error) {
	var c RedisConfig
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || rest == "" {
		return c, errors.New("worker: redis URL: want redis://host:port, redis+sentinel://host:port,.../master or redis+cluster://host:port,...")
	}
	switch scheme {
	case "redis", "rediss":
		c.Mode = RedisSingle
	case "redis+sentinel", "rediss+sentinel":
		c.Mode = RedisSentinel
	case "redis+cluster", "rediss+cluster":
		c.Mode = RedisCluster
	default:
		return c, fmt.Errorf("worker: redis URL: unknown scheme %q (want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster)", scheme)
	}
	c.TLS = strings.HasPrefix(scheme, "rediss")
	rest, query, _ := strings.Cut(rest, "?")
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		user, pass, _ := strings.Cut(rest[:i], ":")
		var err error
		if c.Username, err = url.PathUnescape(user); err != nil {
			return c, errors.New("worker: redis URL: bad escape in the user name")
		}
		if c.Password, err = url.PathUnescape(pass); err != nil {
			return c, errors.New("worker: redis URL: bad escape in the password")
		}
		rest = rest[i+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	for _, h := range strings.Split(hosts, ",") {
		addr, err := hostPort(h)
		if err != nil {
			return c, err
		}
		c.Addrs = append(c.Addrs, addr)
	}
	if c.Mode == RedisSingle && len(c.Addrs) > 1 {
		c.Mode = RedisCluster
	}
	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if c.Mode == RedisSentinel {
		if len(segs) == 0 {
			return c, errors.New("worker: redis URL: redis+sentinel:// needs the master name as its path (redis+sentinel://host:26379,.../mymaster)")
		}
		c.MasterName, segs = segs[0], segs[1:]
	}
	switch {
	case len(segs) > 1:
		return c, fmt.Errorf("worker: redis URL: unexpected path %q", path)
	case len(segs) == 1 && c.Mode == RedisCluster:
		return c, errors.New("worker: redis URL: Redis Cluster has no database number")
	case len(segs) == 1:
		db, err := strconv.Atoi(segs[0])
		if err != nil || db < 0 {
			return c, fmt.Errorf("worker: redis URL: bad database number %q", segs[0])
		}
		c.DB = db
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return c, errors.New("worker: redis URL: bad query")
	}
	for k := range q {
		switch {
		case k == "sentinel_password" && c.Mode == RedisSentinel:
			c.SentinelPassword = q.Get(k)
		default:
			return c, fmt.Errorf("worker: redis URL: unknown parameter %q", k)
		}
	}
	return c, nil
}

func hostPort(h string) (string, error) {
	if h == "" {
		return "", errors.New("worker: redis URL: empty host")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: the default one.
		host, port = strings.Trim(h, "[]"), "6379"
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("worker: redis URL: bad host %q", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("worker: redis URL: bad port in %q", h)
	}
	return net.JoinHostPort(host, port), nil
}

// OpenRedis returns a client for c: a plain client, a Sentinel-backed
// failover client or a cluster client. Commands time out after a few
// seconds so a dead node is noticed and retried rather than waited for.
func OpenRedis(c RedisConfig) redis.UniversalClient {
	var tlsConf *tls.Config
	if c.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	const dial, rw = 3 * time.Second, 3 * time.Second
	switch c.Mode {
	case RedisSentinel:
		sp := c.SentinelPassword
		if sp == "" {
			sp = c.Password
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.MasterName, SentinelAddrs: c.Addrs, SentinelPassword: sp,
			Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: tlsConf,
			DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw,
		})
	case RedisCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: tlsConf,
			DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw,
		})
	default:
		return redis.NewClient(&redis.Options{
			Addr: c.Addrs[0], Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: tlsConf,
			DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw,
		})
	}
}

// ErrUnknownMaster is returned by CheckRedis when a Sentinel answers that it
// monitors no master of the configured name: a configuration error, not an
// outage.
var ErrUnknownMaster = errors.New("worker: redis: no Sentinel monitors that master name")

// CheckRedis tells a configuration error from an outage before the store is
// used. With Sentinel it asks the Sentinels for the master: if one that
// answers knows no master of that name, the error matches ErrUnknownMaster.
// Unreachable Sentinels are not an error here (the client keeps trying).
func CheckRedis(ctx context.Context, c RedisConfig) error {
	if c.Mode != RedisSentinel {
		return nil
	}
	sp := c.SentinelPassword
	if sp == "" {
		sp = c.Password
	}
	for _, addr := range c.Addrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: sp, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
		_, err := s.GetMasterAddrByName(ctx, c.MasterName).Result()
		s.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "No such master"):
			return fmt.Errorf("%w: Sentinel %s knows no master %q", ErrUnknownMaster, addr, c.MasterName)
		}
	}
	return nil
}
