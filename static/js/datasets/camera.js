// The webcam as a picture source. Browsers give the camera only to a secure context (https, or
// http://localhost); a classroom server reached as http://192.168.x.y is not one, and
// navigator.mediaDevices is then missing altogether. `whyNoCamera` says which case applies so
// the page can tell the student what to do instead of failing silently.

/** null when the camera may be asked for, else the catalogue key of the reason it cannot. */
export function whyNoCamera() {
  if (!window.isSecureContext) return "teach.camera.insecure";
  if (!navigator.mediaDevices?.getUserMedia) return "teach.camera.unsupported";
  return null;
}

/** Start the camera into `video`; resolves to a stop function. Rejects with the key of why not. */
export async function startCamera(video) {
  const reason = whyNoCamera();
  if (reason) throw new Error(reason);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
  } catch (error) {
    throw new Error(error?.name === "NotAllowedError" ? "teach.camera.denied" : "teach.camera.failed");
  }
  video.srcObject = stream;
  await video.play();
  return () => {
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
}

/** The current frame as a PNG Blob, the centre square of the picture. */
export function captureFrame(video, side = 128) {
  const canvas = document.createElement("canvas");
  canvas.width = side;
  canvas.height = side;
  const crop = Math.min(video.videoWidth, video.videoHeight);
  const x = (video.videoWidth - crop) / 2;
  const y = (video.videoHeight - crop) / 2;
  canvas.getContext("2d").drawImage(video, x, y, crop, crop, 0, 0, side, side);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}
