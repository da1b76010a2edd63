package ingest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func TestPipe(t *testing.T) {
	var ps pipes
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, pipeBlock - 1, pipeBlock, pipeBlock + 1, (pipeDepth+3)*pipeBlock + 7} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		// The pipe reads in odd sizes from its source and is read in odd sizes.
		p := ps.open(iotest.HalfReader(bytes.NewReader(data)))
		got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(p, 1<<40)))
		p.close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read %d, %v; want the same bytes", n, len(got), err)
		}
	}
}

func TestPipeError(t *testing.T) {
	var ps pipes
	boom := errors.New("crc mismatch")
	data := bytes.Repeat([]byte("x"), 3*pipeBlock+5)
	p := ps.open(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
	got, err := io.ReadAll(p)
	p.close()
	if !errors.Is(err, boom) || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, %v; want %d bytes then %v", len(got), err, len(data), boom)
	}
}

// TestPipeCloseEarly stops reading halfway: close returns while the source
// still has data, and the source is not read after close.
func TestPipeCloseEarly(t *testing.T) {
	var ps pipes
	src := &countingSource{r: bytes.NewReader(make([]byte, 100*pipeBlock))}
	p := ps.open(src)
	if _, err := io.ReadFull(p, make([]byte, pipeBlock+1)); err != nil {
		t.Fatal(err)
	}
	p.close()
	after := src.n
	if after >= 100*pipeBlock {
		t.Fatalf("the pipe read the whole source (%d bytes) after close", after)
	}
	if after > int64(pipeDepth+3)*pipeBlock {
		t.Errorf("the pipe read %d bytes, more than %d blocks ahead", after, pipeDepth+3)
	}
	// A second pipe on the same buffers reads on from where the first stopped.
	p2 := ps.open(src)
	rest, err := io.ReadAll(p2)
	p2.close()
	if err != nil || int64(len(rest)) != 100*pipeBlock-after {
		t.Errorf("second pipe read %d bytes, %v; want %d", len(rest), err, 100*pipeBlock-after)
	}
}

type countingSource struct {
	r io.Reader
	n int64
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
