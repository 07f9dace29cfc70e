"""A modelserve-style model: `init(self, device)` once per worker, then `inference(self, request)`,
where `request` has Django's names: `request.GET` (query arguments), `request.POST` (form fields,
or a JSON object body's keys), `request.FILES` (uploads: file objects with name, content_type,
size), `request.body` (bytes) and `request.json()`.  It answers a dict, a string, bytes (sent with
the class's `content_type`), or a Django JsonResponse/HttpResponse.  `validate` runs before
`inference`: a ValueError there is a 400 that never reaches the model.

    mserve -w 2 --pythonpath Examples/python custom=modelserve_model:Model
    curl -s 'localhost:8000/custom?text=hello'                     # GET with a query, as modelserve's text-to-text
    curl -s localhost:8000/custom -F image=@photo.png              # an upload, as its image-to-text
    curl -s localhost:8000/custom -d '{"text": "hello", "format": "bytes"}'
"""
import hashlib


class Model:
    content_type = "text/plain; charset=utf-8"

    def init(self, device):
        self.device = device
        self.served = 0

    def validate(self, request):
        text = self.text(request)
        if self.upload(request) is None and not text:
            raise ValueError("give text (query, form or JSON) or an image upload")
        if len(text) > 10000:
            raise ValueError("text is longer than 10000 characters")

    def inference(self, request):
        self.served += 1
        image = self.upload(request)
        if image is not None:
            data = image.read()
            return {"name": image.name, "content_type": image.content_type, "size": image.size,
                    "sha256": hashlib.sha256(data).hexdigest(), "device": self.device}
        text = self.text(request)
        if self.option(request, "format") == "bytes":
            return text[::-1].encode()   # sent as text/plain, this class's content_type
        return {"text": text[::-1], "method": request.method, "served": self.served, "device": self.device}

    @staticmethod
    def upload(request):
        # modelserve's example reads request.FILES['image']; the web page at / sends "file".
        return request.FILES.get("image") or next(iter(request.FILES.values()), None)

    @staticmethod
    def option(request, name):
        if name in request.GET:
            return request.GET[name]
        return request.POST.get(name, "")

    def text(self, request):
        text = self.option(request, "text")
        return text if isinstance(text, str) else ""
