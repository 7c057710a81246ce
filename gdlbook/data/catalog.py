"""The registered datasets. A new dataset is one :func:`register` call with its formats."""

from __future__ import annotations

from .formats import (
    decode_cifar_binary,
    decode_idx_pair,
    decode_image_folder_square,
    decode_image_folder_zip,
    decode_image_zip,
    decode_jsb_chorales,
    decode_paths,
    decode_paths_as,
    decode_text,
)
from .registry import Dataset, File, Format, register

MNIST_URLS = ("https://storage.googleapis.com/cvdf-datasets/mnist/",
              "https://ossci-datasets.s3.amazonaws.com/mnist/")
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/")


IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _idx_format(bases: tuple[str, ...], digests: dict[str, tuple[str, str | None]]) -> Format:
    """MNIST's four IDX files; ``digests`` maps each name to (sha256, sha256 of its content)."""
    return Format(
        name="idx",
        description="the canonical IDX files",
        decode=decode_idx_pair,
        files={split: tuple(File(n, sha256=digests[n][0], content_sha256=digests[n][1],
                                 urls=tuple(b + n for b in bases)) for n in names)
               for split, names in IDX_FILES.items()},
    )


register(Dataset(
    name="mnist",
    title="MNIST",
    folder="mnist",
    classes=tuple(str(i) for i in range(10)),
    formats=(_idx_format(MNIST_URLS, {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", None),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", None),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    }),),
    how_to_get=("online, it is downloaded on first use; offline, put the four IDX files "
                "(train-images-idx3-ubyte.gz, ...) in $GDL_DATA_DIR/mnist/ or in the user cache."),
    credit="Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0.",
))

register(Dataset(
    name="fashion_mnist",
    title="Fashion-MNIST",
    folder="fashion-mnist",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    # content digests too: Debian's package recompressed the files (same decompressed bytes)
    formats=(_idx_format(FASHION_URLS, {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    }),),
    how_to_get=("on Debian/Ubuntu, `apt-get install dataset-fashion-mnist`; online, it is "
                "downloaded on first use; or put the four IDX files in $GDL_DATA_DIR/fashion-mnist/."),
    credit="H. Xiao, K. Rasul, R. Vollgraf (Zalando Research); MIT licence.",
))

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
_BIN = "cifar-10-batches-bin/"

register(Dataset(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar10",
    classes=CIFAR10_CLASSES,
    formats=(
        Format(
            name="binary",
            description="the canonical binary batches",
            decode=decode_cifar_binary,
            files={
                "train": tuple(File(f"{_BIN}data_batch_{i}.bin") for i in range(1, 6)),
                "test": (File(f"{_BIN}test_batch.bin"),),
            },
            archive=File(
                "cifar-10-binary.tar.gz",
                sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            ),
        ),
        Format(
            name="jpeg-subset",
            description="the JPEG subset (1,000 train + 200 test images per class, q≈75)",
            decode=decode_image_folder_zip(CIFAR10_CLASSES, (32, 32)),
            complete=False,
            files={
                "train": (File("cifar10_jpeg_q75_subset.zip",
                               sha256="6faaf9b4a270a6f2fcf92f6fc162682ead7cd015813798480f97e0596ac74a2f"),),
                "test": (File("cifar10_jpeg_q75_subset.zip",
                              sha256="6faaf9b4a270a6f2fcf92f6fc162682ead7cd015813798480f97e0596ac74a2f"),),
            },
        ),
    ),
    how_to_get=("online, cifar-10-binary.tar.gz is downloaded on first use; offline, put it (or "
                "its extracted cifar-10-batches-bin/ folder) in $GDL_DATA_DIR/cifar10/, or the "
                "JPEG subset zip of the book's shared data for the smoke profile."),
    credit="A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009.",
))

#: The book trains on the first 5,000 aligned faces, at half resolution, in every profile.
CELEBA_FACES = 5_000
CELEBA_NOTICE = (
    "CelebA: downloading img_align_celeba.zip, 1.44 GB, from the Google Drive of its authors "
    "(Multimedia Laboratory, The Chinese University of Hong Kong). CelebA is available for "
    "non-commercial research purposes only; by downloading it you accept its agreement: "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html. The book uses its first "
    f"{CELEBA_FACES:,} faces.")

register(Dataset(
    name="celeba",
    title="CelebA (aligned faces)",
    folder="celeba",
    splits=("train",),
    formats=(
        Format(
            name="jpeg-subset",
            description="the first 5,000 aligned faces at half resolution (109×89, JPEG q≈75)",
            decode=decode_image_zip("celebA/", (109, 89)),
            complete=False,
            files={"train": (File(
                "celeba_aligned_89x109_first5k.zip",
                sha256="de9cf75a7772a7dd90f06b50bb51175ce73c9db2a6182d42ea826310c4a4bc04"),)},
        ),
        Format(
            name="official-first5k",
            description=(f"the first {CELEBA_FACES:,} faces of CelebA's img_align_celeba.zip, "
                         "resized from 218×178 to 109×89"),
            decode=decode_image_zip("img_align_celeba/", (109, 89), first=CELEBA_FACES,
                                    source_size=(218, 178)),
            complete=False,
            # sha256 as recorded by TensorFlow Datasets (url_checksums/celeb_a.txt); the
            # authors publish the file, not a digest
            files={"train": (File(
                "img_align_celeba.zip",
                sha256="46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
                urls=("https://drive.google.com/uc?export=download&id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",),
                notice=CELEBA_NOTICE),)},
        ),
    ),
    how_to_get=("online, img_align_celeba.zip (1.44 GB) is downloaded on first use from the "
                "authors' Google Drive (non-commercial research use only) and its first 5,000 "
                "faces are used; offline, put that zip, or the 5,000-face subset of the book's "
                "shared data (celeba_aligned_89x109_first5k.zip), in $GDL_DATA_DIR/celeba/."),
    credit="Z. Liu, P. Luo, X. Wang, X. Tang; non-commercial research use only.",
))

FLOWERS_COUNT = 8_189
FLOWERS_SIZE = 128

register(Dataset(
    name="oxford_flowers102",
    title="Oxford 102 Flowers",
    folder="oxford_flowers102",
    splits=("train",),
    formats=(
        Format(
            name="jpeg",
            description=(f"the canonical 102flowers.tgz ({FLOWERS_COUNT:,} JPEG images), each "
                         f"centre-cropped and resized to {FLOWERS_SIZE}×{FLOWERS_SIZE}"),
            # the last image stands for the folder; the decoder reads and counts all of them
            decode=decode_image_folder_square("image_*.jpg", FLOWERS_COUNT, FLOWERS_SIZE),
            files={"train": (File(f"jpg/image_{FLOWERS_COUNT:05d}.jpg"),)},
            # sha256 as recorded by TensorFlow Datasets (url_checksums/oxford_flowers102.txt);
            # the decoder also reads and counts all 8,189 images
            archive=File("102flowers.tgz",
                         sha256="2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246",
                         urls=("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",),
                         notice="Oxford 102 Flowers: downloading 102flowers.tgz, 345 MB, from "
                                "the Visual Geometry Group, University of Oxford."),
        ),
    ),
    how_to_get=("online, 102flowers.tgz (about 330 MB) is downloaded from the Visual Geometry "
                "Group's site on first use; offline, put 102flowers.tgz (or its extracted jpg/ "
                "folder) in $GDL_DATA_DIR/oxford_flowers102/."),
    credit=("M.-E. Nilsback and A. Zisserman, Automated Flower Classification over a Large "
            "Number of Classes, ICVGIP 2008."),
))

# --------------------------------------------------------------------------- text corpora
# A text dataset loads as one Python str (split "train" only). The shared copies are the
# canonical files byte for byte, so one sha256 serves both.

def _text_corpus(name: str, title: str, description: str, filename: str, sha256: str,
                 url: str, credit: str, *, saved_as: str = "") -> Dataset:
    """A one-file plain-text corpus in ``$GDL_DATA_DIR/text/``, split "train" only."""
    return Dataset(
        name=name,
        title=title,
        folder="text",
        splits=("train",),
        formats=(Format(
            name="text",
            description=description,
            decode=decode_text(),
            cache_decoded=False,
            files={"train": (File(filename, sha256=sha256, urls=(url,)),)},
        ),),
        how_to_get=(f"online, it is downloaded on first use; offline, put {filename}{saved_as} in "
                    "$GDL_DATA_DIR/text/ or in the user cache."),
        credit=credit,
    )


register(_text_corpus(
    "nietzsche", "Nietzsche, Beyond Good and Evil (English)",
    "the plain-text corpus of Keras's text-generation example",
    "nietzsche.txt", "23cf69874ab69d3d256099ab530ea4be24d47d9675b673bcc67cbcd6298ec647",
    "https://s3.amazonaws.com/text-datasets/nietzsche.txt",
    "F. Nietzsche, Beyond Good and Evil (tr. H. Zimmern), Project Gutenberg; public domain.",
))

register(_text_corpus(
    "tinyshakespeare", "Tiny Shakespeare", "the char-rnn corpus (karpathy/char-rnn)",
    "tinyshakespeare.txt", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    "W. Shakespeare, selected plays, as collected by A. Karpathy for char-rnn; public domain.",
    saved_as=" (the char-rnn input.txt, renamed)",
))


# --------------------------------------------------------------------------- music (chapter 11)

#: The 41 movements of Bach's cello suites, BWV 1007-1012, as MIDI: sha256 of each file.
CELLO_MOVEMENTS = {
    "bwv1007_01": "882df9e383fa6c4a09cb30609dc23bcbe810d3402ab5dc3ee831042bdfa0093a",
    "bwv1007_02": "5e8b0df0a202925135a0ceab9172a609b326b6f0328bbadbe88386709c5f4ee9",
    "bwv1007_03": "ff713f6cc29b3549b3eac9d60942997350cc82b29a0ebcde766c93c57eafb711",
    "bwv1007_04": "51506c57a24cd743426cbbe3d5c80a44b1dc51f2ea65bded0ac6b43185f25c54",
    "bwv1007_05": "b300aa358175aee7dfa134fbd9fbf3a7a5a5cb6b010ce2a659ebbbac8e79a0e7",
    "bwv1007_06": "56ae1402d0f011267488ef8e98609ba882cc8eca9a43626cdb23cddf123aa247",
    "bwv1007_07": "7595dfd580f0c3dbcb04ae7f09062e7220b70a64b17bd8277334625a01ddadb1",
    "bwv1008_01": "5431a0b93680aaa680b8b4f197ea251a3b159bdb70a5071daa09a2b47892875c",
    "bwv1008_02": "ea3bf6df7905feca7f3d6ccf00b0b49acb00c4f6c31ae4a12624a59cffd6fee1",
    "bwv1008_03": "a36559ecc04380439b1f81038bc748e99ed045f0be16bcbbd55277f23f4f5bb7",
    "bwv1008_04": "a1f0980b8a17ac6e2cd08229d903d4013962ec06c0e676bc607f18e558ee3461",
    "bwv1008_05": "fc0e65de6b57ea4a9feafaf5412bfce1eb75343563cdb29615aa0ba000189d86",
    "bwv1008_06": "dd2f7f2d16ed16bd32b0a427fefcbe5e09c33c42ee9f6677a48d45e8cc4a5836",
    "bwv1008_07": "cfe4c5b1b4117bf3908ddb28a1bb1ab87d989afeb32d365c4b05aad9e7bd8a49",
    "bwv1009_01": "857d2fc812e24a3b944dd2558eed80121db70fdbc548a275383fe47afeea7832",
    "bwv1009_02": "70c4382a3f26baa3d67aa2ee8b8251d343e0379eaa5ff3f67e86006a37f97f04",
    "bwv1009_03": "8bc57a6df56e21fe002a64adcf7b40f5f888aa1759db6f580b376b12292fb26d",
    "bwv1009_04": "df0828ef36814dac20663a1c7741049febd4a5dc041a584655d20b4b7b80ecf2",
    "bwv1009_05": "43a2f22b06c401af9312c61d4dfcd9d9797abe04d2bb050718f7cfbf9f87eeec",
    "bwv1009_06": "3652551a2d7a4d2a29fa6c0d73055a0e6d8081ae3a76ec186f4b70d7c54fce9c",
    "bwv1010_01": "f433f4b8781945ed0fcd57a70128f253de9b6ab17aa4b61108e056de53d94634",
    "bwv1010_02": "a0cbd157b828be257d1965ef93a6d2b82207a7fa7bddfc167f20cbd653a78d58",
    "bwv1010_03": "b35b07513ea2ba5f166871c4406bc4bcad88e5858b35ada6f27cb4c9aa3a30b6",
    "bwv1010_04": "94168433cc084475b0234c0c2a04786b3975ec6b6b7500e687c1350e08949299",
    "bwv1010_05": "5974673e5bc98f8115ef98085e8cf2cd3a2a1c83cbb1c67f02612c89b3da1fd2",
    "bwv1010_06": "948d612dcf8eb2abde4dc0d0ce31600201427e35a9a515b10538220135b81bf1",
    "bwv1010_07": "e5b9ffce546d7ba35ce1a704fe119c95c7daab47f1a10c2987584906516aa819",
    "bwv1011_01": "c484c017f4a58e49787cf6dc8d2411a15e9f23d97da09a756ad420418556ea36",
    "bwv1011_02": "4b45c9fa92596cd73c3257cfc2f7119c39f6f3cb4f348665e56c32941c0d9c90",
    "bwv1011_03": "0b0b4c7d19d1e4d88be52c4b214306930432a5383f9a599e89568dba7ed1d666",
    "bwv1011_04": "d951aaee5bcb1ff86ec4c1d32df47b8970d76df011d3067563c879cd51d6cfd3",
    "bwv1011_05": "35c8cc6c78a60b4293a2fe278eac8f44d18c1528d0a14c8f1e49c36f33905e11",
    "bwv1011_06": "adb3d1dadd8320c12b76b42c70458f0fabc86e5eee3271ab80af72498daaf8a2",
    "bwv1011_07": "70916436676623fcc775ad0b5e1266d7d91d8ba55da53401f97129b2de20971c",
    "bwv1012_01": "4933e0b71dd45787a4bf8b8639e408faa504a3f9efd0d437bad9c920217b4844",
    "bwv1012_02": "989120338395146ace39b8ad3a924964845510a52d89fcec9b809b221c0bb05a",
    "bwv1012_03": "41c0ed722b027730d2caf3d9565799aeedfbaec370432e5d31d26b3ec2669ce6",
    "bwv1012_04": "4f40fdd09c43c6c8fdf483e9af83c335fa2cf24eec6baee51c8a84a0d2a93034",
    "bwv1012_05": "7296f63aeb5e66a4496c55a6c7957dbc99e0b2f84ea19dcca033ce123ba1a354",
    "bwv1012_06": "a11531a74192d9c9a959e45a3b1eec9f7380e1f9451336e741d5d4e8ef1ea91b",
    "bwv1012_07": "0e69c44678f68f1e0b12a1226581e9b10cad70b0a0e26a27b88e895a3c285ffe",
}
CELLO_CREDIT = (
    "J. S. Bach, Six Suites for Violoncello solo, BWV 1007-1012. Engraved by the Mutopia Project "
    "(www.mutopiaproject.org): BWV 1007, 1009, 1010 and 1011 public domain; BWV 1008 and 1012 "
    "typeset by Hajo Dezelski, CC BY-SA 3.0. The MIDI files are the book's own renders of those "
    "LilyPond sources (BWV 1011 in its sounding-pitch edition). Where those are not at hand, "
    "the download is David J. Grossman's MIDI sequences of jsbach.net (the files of suites 3, "
    "5 and 6 carry his copyright notice, 1995-1996; the copy used, in the GitHub repository "
    "peterdw/capstone-project-UCSD at one pinned commit, states no licence).")

#: David J. Grossman's sequences of the six suites (jsbach.net, 1995-1997): 36 files, one per
#: movement as he splits them (Menuet, Bourrée and Gavotte I and II in one file), sha256 of
#: each. jsbach.net serves them over plain http and states no checksum; these digests are of the
#: copies committed to the public GitHub repository peterdw/capstone-project-UCSD in its first
#: commit (CELLO_GROSSMAN_COMMIT, 11 Dec 2023: the files as git blobs, all starting with MThd).
#: Its next commit moved them to Git LFS; the LFS pointers there (CELLO_GROSSMAN_LFS_COMMIT)
#: name the same sha256 and sizes, so its LFS copies are the same bytes.
CELLO_GROSSMAN = {
    "cs1-1pre": "843c5486dab589cc03a585bff12a522bbbb88f3f917a33dd5b760f9e02f3f24b",
    "cs1-2all": "d4174ed21d8246391730210675199dfe80c82a13806e4afe9f764d322df48190",
    "cs1-3cou": "7845bbba52e07fb0a3bb8d1a43632218fa0830b3e693f60cd64ce90f6f5b0211",
    "cs1-4sar": "f98735cbc213dd9b6819a121b655b1301b352c3cf7c483f53a3fd93c8cbbf14c",
    "cs1-5men": "688121f0dc3b86bc52fce5fa81c055b4909889f6bd473baea7a871abcb5c0efd",
    "cs1-6gig": "6832780a1ea46d22569755f0784336951e1b30f9626eefdaa537386fd0953674",
    "cs2-1pre": "325fcaebcc4995a8ae83172c806415e07b5beb5af066a1138987f57854f7c056",
    "cs2-2all": "0d6d1cefa9f71ffa0e426cf39bbe04f46dc86976cc0d91d4c2178b003a1a793d",
    "cs2-3cou": "bf1636d308e16eca1ddb7e3e7f7b1208e64294a8793781b80fd3447612fdc35d",
    "cs2-4sar": "bf0dc7a4f8453ef065ae192264682e6deda001ab9b6b10572f2c932c1ce14e24",
    "cs2-5men": "01652272d687bf2efc89d5fc4b7fefd34ac38b64a62b49097b58c829b8d50e31",
    "cs2-6gig": "594cb91352387173e92b9ea2c3c3b2520987cd0ca9a4ac0ed37e33715b95ca0d",
    "cs3-1pre": "09abf1490c2302a46b5943d6b2354104c48047eb0a7d29e06ba93ca3029ac104",
    "cs3-2all": "bbbcb8a12d24a6f04c4393525f02055fb5c61f8666df9900cb10eb8917bda6f5",
    "cs3-3cou": "cbbd22741dbd76822f419fd0d73915df34e57da5e33cecb27c529449856705cf",
    "cs3-4sar": "aafcd45c0066a2d212aff86a9435ac1946423b14e3c7abc15e2e1a6571e3db55",
    "cs3-5bou": "4d77f2563add0be27bbba91e9984b2174f2b093195c5d5caf345004a873f04b1",
    "cs3-6gig": "f691650f5c34603c871cb180ea8376afa3d095be4ee4ecf7196cece994cacaee",
    "cs4-1pre": "9ed93f845f7c01ae53d9bb988808020498d0f7ae49e1d8b8b7c745ac8774859d",
    "cs4-2all": "1641600be3354d2b3b59c29295434e53185be46725641c2a4374858a7a3f100a",
    "cs4-3cou": "e34c454a8eac25230f457b88b9ba40130e55754b04ecd5e35f273b5b59f50271",
    "cs4-4sar": "0567a8ff410c614ef9759e832cec01a7c3de0e7ba06bfe4f01dac4aa0c703c47",
    "cs4-5bou": "2e9791147e54e18535200425de9424b0bf743cb444bbf4764293b5073b9c3af1",
    "cs4-6gig": "4a5a25434cd5fd3eadb25f9ba1bd5ed721b0d8e5b59256b73c778abd2a61c074",
    "cs5-1pre": "752cd3779db587cf574c5c8e87c1adacd3b2be7ede3631bc7e6aa040d1332bff",
    "cs5-2all": "f44fd249d725950449b5a8bba0808b93027bd05d6efbf1ad1b5d3614bb78b03c",
    "cs5-3cou": "153a6df46bedac68c10215b6b9bacfb8af4a5a9019125ee6229fa1425f2e56d1",
    "cs5-4sar": "c2b4dcf8e496d12fe74d9689ab7e878cde026dc8592059ae99c2335e2e3217cb",
    "cs5-5gav": "bb43d51410d79487c2cb38929be92d5f1e2764d3c092b253132cd20b44891634",
    "cs5-6gig": "b33af0c5b33c4bec96bb385feeb826426ecd313161c069787b22b997e5fd34ce",
    "cs6-1pre": "5923b44961a1d03e63b6644fd61332da8e7f53e871fe48eded95eb7ca0ce2c73",
    "cs6-2all": "faff4fbff7b15babc17809b863a3a40586f2ffb3ccb9aece72967baca7245c72",
    "cs6-3cou": "8ce798fe14d6f4c248e9cca9efc4c8b6134a68057e80361e334966e7aff597b4",
    "cs6-4sar": "658ed1668ba824569f838f6c15473a0eb0322ea34a7ef1c1927284da2a05dc6d",
    "cs6-5gav": "250510275ddd2dabf0f6faa8ae2fb78480d47668e20e7edf375107c38ae89baf",
    "cs6-6gig": "fcfef524fa2d64cde67528f1de4b245efc32c57be223071973ba94e5728baa44",
}
CELLO_GROSSMAN_REPO = "peterdw/capstone-project-UCSD"
CELLO_GROSSMAN_COMMIT = "ed8d4411e4f2daad002715ef5a7bc89fac014e3e"
CELLO_GROSSMAN_LFS_COMMIT = "6ba7f08a7f469af8477058bc4d995485156e51e2"


def _grossman_key(name: str) -> str:
    """The key of Grossman's file ``csS-MMxxx`` in the 41-movement layout: ``bwvNNNN_MM``.

    Suite S is BWV 1006 + S. Movements 1-5 keep their number (the fifth file holds Menuet,
    Bourrée or Gavotte I *and* II, and takes the number of I); the gigue is movement 7, or 6 in
    BWV 1009, whose Bourrées I+II are one movement in both sets. So a key names the same
    movement in both sets, and the downloaded set lacks only the keys of the second halves
    (bwv1007_06, bwv1008_06, bwv1010_06, bwv1011_06, bwv1012_06).
    """
    suite, movement = int(name[2]), int(name[4])
    bwv = 1006 + suite
    if movement == 6:
        movement = 6 if bwv == 1009 else 7
    return f"bwv{bwv}_{movement:02d}"


#: Grossman's file name -> the movement's key (see _grossman_key).
CELLO_GROSSMAN_KEYS = {f"{n}.mid": _grossman_key(n) for n in CELLO_GROSSMAN}

register(Dataset(
    name="bach_cello",
    title="Bach cello suites (MIDI, one file a movement)",
    folder="bach_cello",
    splits=("train",),
    formats=(
        Format(
            name="midi",
            description="the book's 41 MIDI renders of the Mutopia Project's engravings",
            decode=decode_paths,
            cache_decoded=False,
            files={"train": tuple(File(f"{stem}.mid", sha256=digest)
                                  for stem, digest in CELLO_MOVEMENTS.items())},
        ),
        Format(
            name="grossman",
            description=("David J. Grossman's 36 MIDI sequences (jsbach.net; I and II of a "
                         "menuet, bourrée or gavotte in one file)"),
            decode=decode_paths_as(CELLO_GROSSMAN_KEYS),
            cache_decoded=False,
            files={"train": tuple(File(
                f"{name}.mid", sha256=digest,
                urls=(f"https://raw.githubusercontent.com/{CELLO_GROSSMAN_REPO}/"
                      f"{CELLO_GROSSMAN_COMMIT}/data/bach_cello/{name}.mid",
                      f"https://media.githubusercontent.com/media/{CELLO_GROSSMAN_REPO}/"
                      f"{CELLO_GROSSMAN_LFS_COMMIT}/data/bach_cello/{name}.mid"))
                for name, digest in CELLO_GROSSMAN.items())},
        ),
    ),
    how_to_get=(
        "online, David J. Grossman's 36 MIDI sequences (jsbach.net) are downloaded on first use "
        "(about 240 kB) from a copy on GitHub pinned to one commit; offline, put them "
        "(cs1-1pre.mid ... cs6-6gig.mid, as jsbach.net names them) in $GDL_DATA_DIR/bach_cello/ "
        "or in the user cache. The book's own 41 renders of the Mutopia Project's engravings "
        "(bwv1007_01.mid ... bwv1012_07.mid) are kept with its shared data and are preferred "
        "where present; the Mutopia Project (www.mutopiaproject.org, BachJS/BWV1007-1012) "
        "publishes the LilyPond sources and its own MIDI renders, which differ byte for byte "
        "from ours."),
    credit=CELLO_CREDIT,
))

register(Dataset(
    name="bach_chorales",
    title="JSB chorales (16th-note grid, 4 voices)",
    folder="bach_chorales",
    splits=("train", "valid", "test"),
    formats=(Format(
        name="npz",
        description="Jsb16thSeparated.npz of czhuang/JSB-Chorales-dataset",
        decode=decode_jsb_chorales,
        cache_decoded=False,
        files={split: (File(
            "Jsb16thSeparated.npz",
            sha256="2adcdf0d57880c3763f104555072285fe7f9e3d6049fcc4b9830557b8d4a7820",
            urls=("https://github.com/czhuang/JSB-Chorales-dataset/raw/master/"
                  "Jsb16thSeparated.npz",)),) for split in ("train", "valid", "test")},
    ),),
    how_to_get=("online, Jsb16thSeparated.npz (100 kB) is downloaded from "
                "github.com/czhuang/JSB-Chorales-dataset on first use; offline, put it in "
                "$GDL_DATA_DIR/bach_chorales/ or in the user cache."),
    credit=("J. S. Bach's chorales as prepared by Boulanger-Lewandowski et al. (2012), on a "
            "16th-note grid by C.-Z. A. Huang (czhuang/JSB-Chorales-dataset); music public domain."),
))
