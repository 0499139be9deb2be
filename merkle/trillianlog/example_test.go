package trillianlog_test

import (
	"context"
	"fmt"
	"log"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/trillianlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Open a Log on tree 6169097731272246417 of the log server at
// 127.0.0.1:8090 (made with createtree), sign its checkpoints with the key
// in log.key, and append two leaves. Every replica runs the same, with the
// same key and tree.
func ExampleOpen() {
	ctx := context.Background()
	signer, vkey, err := merkle.LoadOrCreateKeyFile("log.key", "provtrail.example/log")
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient("127.0.0.1:8090", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	l, err := trillianlog.Open(ctx, trillianlog.Config{
		Client: trillian.NewTrillianLogClient(conn),
		TreeID: 6169097731272246417,
		Origin: "provtrail.example/log",
		Signer: signer,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	idx, err := l.Append(ctx, [][]byte{[]byte("first"), []byte("second")})
	if err != nil {
		log.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(idx, vkey)
	fmt.Printf("%s", cp.Note)
}
