//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/api/option"
)

// Bucket is the bucket the tests publish releases to, in both stores.
const Bucket = "releases"

// Stores are a real S3 gateway (versitygw on a POSIX directory) and the
// GCS emulator, on loopback.
type Stores struct {
	S3Addr, GCSAddr string // host:port
	S3Key, S3Secret string
	// STS stands in for AWS's STS endpoint, for tasks' aws_identity.
	STS *STS

	dir       string
	root      string
	s3, gcs   *exec.Cmd
	s3Port    int
	gcsPort   int
	logs      *Cluster
	bin       string
	s3Client  *s3.Client
	gcsClient *storage.Client
}

// StartStores starts both servers and creates the bucket in each.
func StartStores(root, dir string) (*Stores, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &Stores{
		dir: dir, root: filepath.Join(dir, "s3root"), bin: filepath.Join(root, "bin"),
		s3Port: ports[0], gcsPort: ports[1],
		S3Addr:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		GCSAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		S3Key:   "beamtest", S3Secret: "beamtest-secret-" + strconv.Itoa(ports[0]),
		logs: &Cluster{Dir: dir},
	}
	if err := os.MkdirAll(filepath.Join(s.root, Bucket), 0o755); err != nil {
		return nil, err
	}
	if err := s.StartS3(); err != nil {
		return nil, err
	}
	if s.STS, err = StartSTS(s.S3Key, s.S3Secret); err != nil {
		return nil, err
	}
	s.gcs = exec.Command(filepath.Join(s.bin, "fake-gcs-server"), "-scheme", "http", "-host", "127.0.0.1",
		"-port", strconv.Itoa(s.gcsPort), "-backend", "memory", "-public-host", s.GCSAddr, "-log-level", "warn")
	if err := s.logs.startLogged(s.gcs, "gcs.log"); err != nil {
		return nil, err
	}

	s.s3Client = s3.New(s3.Options{
		BaseEndpoint: aws.String("http://" + s.S3Addr),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.S3Key, s.S3Secret, ""),
	})
	s.gcsClient, err = storage.NewClient(context.Background(),
		option.WithEndpoint("http://"+s.GCSAddr+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		return nil, err
	}
	err = waitFor(30*time.Second, func() error {
		return s.gcsClient.Bucket(Bucket).Create(context.Background(), "beam-test", nil)
	})
	if err != nil {
		return nil, fmt.Errorf("fake-gcs-server: %w\n%s", err, s.logs.tail("gcs.log"))
	}
	return s, nil
}

// StartS3 starts (or restarts) versitygw on its port.
func (s *Stores) StartS3() error {
	s.s3 = exec.Command(filepath.Join(s.bin, "versitygw"), "--port", s.S3Addr,
		"--access", s.S3Key, "--secret", s.S3Secret, "posix", s.root)
	if err := s.logs.startLogged(s.s3, "s3.log"); err != nil {
		return err
	}
	err := waitFor(30*time.Second, func() error {
		resp, err := http.Get("http://" + s.S3Addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if err != nil {
		return fmt.Errorf("versitygw: %w\n%s", err, s.logs.tail("s3.log"))
	}
	return nil
}

// StopS3 stops versitygw, as an outage.
func (s *Stores) StopS3() {
	if s.s3 != nil && s.s3.Process != nil {
		_ = s.s3.Process.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && syscall.Kill(s.s3.Process.Pid, 0) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		_ = s.s3.Process.Kill()
	}
}

// Stop stops both servers.
func (s *Stores) Stop() {
	s.StopS3()
	if s.STS != nil {
		s.STS.Stop()
	}
	if s.gcs != nil && s.gcs.Process != nil {
		_ = s.gcs.Process.Kill()
	}
}

// Env is what the Nomad agent (and so the plugin) needs to reach the
// stores: S3 credentials and the GCS emulator.
func (s *Stores) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.S3Key,
		"AWS_SECRET_ACCESS_KEY=" + s.S3Secret,
		"AWS_REGION=us-east-1",
		"STORAGE_EMULATOR_HOST=" + s.GCSAddr,
	}
}

// PutS3 uploads a file to s3://releases/key.
func (s *Stores) PutS3(key string, body []byte) error {
	_, err := s.s3Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	return err
}

// PutGCS uploads a file to gs://releases/name.
func (s *Stores) PutGCS(name string, body []byte) error {
	w := s.gcsClient.Bucket(Bucket).Object(name).NewWriter(context.Background())
	if _, err := w.Write(body); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
