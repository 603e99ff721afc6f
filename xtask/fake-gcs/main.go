// Command fake-gcs serves fsouza's fake-gcs-server (the library, unchanged) for the
// project's tests, with the one route of Cloud Storage's XML API that object_store uses
// and the server lacks (fsouza/fake-gcs-server#331): PUT /<bucket>/<object>. That route
// is forwarded to the server's own JSON media upload, with the request's
// x-goog-if-generation-match header as its ifGenerationMatch parameter, so that what is
// stored and when a precondition fails is the server's doing, not this file's.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

func main() {
	port := flag.Int("port", 4443, "the port to listen on, on 127.0.0.1")
	bucket := flag.String("bucket", "", "a bucket to create at start")
	flag.Parse()
	host := fmt.Sprintf("127.0.0.1:%d", *port)
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       uint16(*port),
		NoListener: true,
		PublicHost: host,
		// The base object_store's list requests and downloads are made against.
		ExternalURL: "http://" + host,
	})
	if err != nil {
		log.Fatalf("cannot start fake-gcs-server: %v", err)
	}
	if *bucket != "" {
		server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: *bucket})
	}
	handler := server.HTTPHandler()
	log.Printf("serving on http://%s", host)
	log.Fatal(http.ListenAndServe(host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bucket, object, ok := xmlPut(r); ok {
			forwardPut(handler, w, r, bucket, object)
			return
		}
		handler.ServeHTTP(w, r)
	})))
}

// xmlPut recognises an XML API upload: a PUT of /<bucket>/<object> with no upload
// protocol named in its query.
func xmlPut(r *http.Request) (string, string, bool) {
	if r.Method != http.MethodPut || r.URL.RawQuery != "" {
		return "", "", false
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	if strings.HasPrefix(path, "upload/") || strings.HasPrefix(path, "storage/") {
		return "", "", false
	}
	bucket, object, ok := strings.Cut(path, "/")
	if !ok || bucket == "" || object == "" {
		return "", "", false
	}
	return bucket, object, true
}

// forwardPut uploads the body through the JSON API and answers as the XML API does:
// the status, with the object's ETag and generation in headers and no body.
func forwardPut(handler http.Handler, w http.ResponseWriter, r *http.Request, bucket, object string) {
	query := url.Values{"uploadType": {"media"}, "name": {object}}
	if generation := r.Header.Get("x-goog-if-generation-match"); generation != "" {
		query.Set("ifGenerationMatch", generation)
	}
	upload := r.Clone(r.Context())
	upload.Method = http.MethodPost
	upload.URL = &url.URL{Path: "/upload/storage/v1/b/" + bucket + "/o", RawQuery: query.Encode()}
	upload.RequestURI = ""
	upload.Host = ""
	recorded := httptest.NewRecorder()
	handler.ServeHTTP(recorded, upload)
	if recorded.Code != http.StatusOK {
		w.WriteHeader(recorded.Code)
		_, _ = w.Write(recorded.Body.Bytes())
		return
	}
	var stored struct {
		Etag       string `json:"etag"`
		Generation string `json:"generation"`
	}
	if err := json.Unmarshal(recorded.Body.Bytes(), &stored); err != nil {
		http.Error(w, "the upload's answer does not read: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := strconv.ParseInt(stored.Generation, 10, 64); err == nil {
		w.Header().Set("x-goog-generation", stored.Generation)
	}
	w.Header().Set("ETag", `"`+stored.Etag+`"`)
	w.WriteHeader(http.StatusOK)
}
